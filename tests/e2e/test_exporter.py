"""The exporter as a real process against the real /proc, scraped over HTTP."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from procpilot.core.procfs import FS, ProcReader
from procpilot.exporter import config
from procpilot.exporter.collectors import COLLECTORS
from procpilot.exporter.scrape import ScrapeCollector
from tests.support.fakeproc import FakeProcfs
from tests.support.realprocs import (
    detached_daemon,
    orphans,
    sleepers,
    zombie_parent,
)
from tests.support.service import (
    Samples,
    Service,
    parse,
    promtool,
    promtool_check_metrics,
    start,
    value,
    wait_for,
)

GROUPS = """
groups:
  - name: e2e-sleepers
    comm: [pp-sleeper]
    per_process: true
  - name: e2e-absent
    comm: [pp-never-runs]
"""



def states_in_proc() -> Counter[str]:
    """Process count per state letter, read straight from /proc/<pid>/stat."""
    states: Counter[str] = Counter()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                states[f.read().rsplit(b") ", 1)[1][:1].decode()] += 1
        except OSError:
            pass
    return states


def run_exporter(tmp_path: Path, *args: str, config: str = GROUPS) -> Service:
    cfg = tmp_path / "exporter.yaml"
    cfg.write_text(config)
    return start("procpilot.exporter.cli", [f"--config.file={cfg}", *args], str(tmp_path / "log"))


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Service]:
    service = run_exporter(tmp_path)
    yield service
    assert service.stop() == 0


def test_zombies_counted_by_parent(exporter: Service) -> None:
    with zombie_parent("pp-zparent", 3):
        got = exporter.scrape()
        assert value(got, "procpilot_zombie_processes", parent="pp-zparent") == 3
        assert value(got, "procpilot_zombie_oldest_start_time_seconds", parent="pp-zparent")
    assert value(exporter.scrape(), "procpilot_zombie_processes", parent="pp-zparent") is None


def test_orphans_counted_and_detached_daemons_not(exporter: Service) -> None:
    with orphans("pp-orphan", 2), detached_daemon("pp-daemon"):
        got = exporter.scrape()
        assert value(got, "procpilot_orphan_processes", name="pp-orphan", user="root") == 2
        assert not [k for k in got if dict(k[1]).get("name") == "pp-daemon"
                    and k[0] == "procpilot_orphan_processes"]


def test_groups_follow_real_processes(exporter: Service) -> None:
    first = exporter.scrape()
    assert value(first, "procpilot_group_processes", group="e2e-absent") == 0
    assert value(first, "procpilot_group_processes", group="e2e-sleepers") == 0
    with sleepers("pp-sleeper", 3) as procs:
        got = exporter.scrape()
        assert value(got, "procpilot_group_processes", group="e2e-sleepers") == 3
        assert value(got, "procpilot_group_threads", group="e2e-sleepers") == 3
        rss = value(got, "procpilot_group_resident_memory_bytes", group="e2e-sleepers")
        assert rss and rss > 3 * 1024 * 1024
        for p in procs:
            assert value(got, "procpilot_process_resident_memory_bytes",
                         group="e2e-sleepers", pid=str(p.pid))
        cpu_before = value(got, "procpilot_group_cpu_seconds_total",
                           group="e2e-sleepers", mode="user")
        procs[0].kill()
        procs[0].wait()
        got = exporter.scrape()
        assert value(got, "procpilot_group_processes", group="e2e-sleepers") == 2
        cpu_after = value(got, "procpilot_group_cpu_seconds_total",
                          group="e2e-sleepers", mode="user")
        assert cpu_before is not None and cpu_after is not None and cpu_after >= cpu_before


def test_summary_matches_proc(exporter: Service) -> None:
    with sleepers("pp-count", 5):
        before = states_in_proc()
        got = exporter.scrape()
        after = states_in_proc()
    # Other processes come and go on a shared machine: each count must lie between what
    # /proc showed just before and just after the scrape (idle kernel threads included).
    for state, letter in (("idle", "I"), ("zombie", "Z"), ("stopped", "T")):
        low, high = sorted((before.get(letter, 0), after.get(letter, 0)))
        assert low - 2 <= (value(got, "procpilot_processes", state=state) or 0) <= high + 2
    total = sum(v for (name, _), v in got.items() if name == "procpilot_processes")
    low, high = sorted((sum(before.values()), sum(after.values())))
    assert low - 50 <= total <= high + 50
    assert (value(got, "procpilot_processes", state="sleeping") or 0) >= 5
    assert (value(got, "procpilot_threads") or 0) >= total
    assert all(value(got, "procpilot_exporter_collector_success", collector=c) == 1
               for c in ("summary", "zombies", "orphans", "groups", "top"))


def test_busiest_process_is_in_top_cpu(exporter: Service) -> None:
    with sleepers("pp-burner", 1, burn=True) as (burner,):
        exporter.scrape()
        wait_for(lambda: value(exporter.scrape(), "procpilot_top_process_cpu_usage_ratio",
                               pid=str(burner.pid), name="pp-burner") is not None,
                 what="burner in top cpu")


@pytest.mark.skipif(promtool() is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_finds_nothing(exporter: Service) -> None:
    with zombie_parent("pp-lint", 1), sleepers("pp-sleeper", 2):
        exporter.get()
        assert promtool_check_metrics(exporter.get()) == ""


def test_concurrent_scrapes_all_succeed(exporter: Service) -> None:
    results: list[Samples] = []
    errors: list[BaseException] = []

    def scrape() -> None:
        try:
            results.append(exporter.scrape())
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 8
    assert all(value(r, "procpilot_exporter_collector_success", collector="groups") == 1
               for r in results)


def test_landing_page_and_404(exporter: Service) -> None:
    assert "/metrics" in exporter.get("/")
    with pytest.raises(Exception, match="404"):
        exporter.get("/nope")


def test_collectors_can_be_switched_off(tmp_path: Path) -> None:
    service = run_exporter(tmp_path, "--no-collector.top", "--no-collector.groups")
    try:
        got = service.scrape()
    finally:
        service.stop()
    names = {name for name, _ in got}
    assert "procpilot_processes" in names
    assert not any(n.startswith(("procpilot_top_", "procpilot_group_")) for n in names)
    assert value(got, "procpilot_exporter_collector_success", collector="top") is None


def test_bad_config_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("groups:\n  - name: x\n    comm: [a]\n    restrat: 1\n")
    result = subprocess.run([sys.executable, "-m", "procpilot.exporter.cli",
                             f"--config.file={cfg}"],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 2
    assert str(cfg) in result.stderr
    assert "groups.0.restrat" in result.stderr


def test_sighup_reload_keeps_old_config_when_new_is_broken(tmp_path: Path) -> None:
    service = run_exporter(tmp_path)
    cfg = tmp_path / "exporter.yaml"
    try:
        cfg.write_text("groups: [{name: broken}]\n")
        service.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload failed" in service.log(), what="reload failure logged")
        assert value(service.scrape(), "procpilot_group_processes", group="e2e-absent") == 0
        cfg.write_text("groups: [{name: renamed, comm: [x]}]\n")
        service.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in service.log(), what="reload logged")
        got = service.scrape()
        assert value(got, "procpilot_group_processes", group="renamed") == 0
        assert value(got, "procpilot_group_processes", group="e2e-absent") is None
    finally:
        assert service.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_unprivileged_scrape_never_fails() -> None:
    """As nobody, exe and cmdline of root's processes are unreadable: a real EACCES.

    The collector runs in a forked child that dropped to nobody (the virtualenv's
    interpreter may sit where nobody cannot exec it).
    """
    nobody = pwd.getpwnam("nobody")
    cfg = config.load(None).model_copy(update={"groups": [
        config.Group(name="by-exe", exe=["python3", "bash", "process_api"]),
        config.Group(name="{comm}", cmdline="."),
    ]})
    with orphans("pp-orphan-nb", 1, user="nobody"):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                registry = CollectorRegistry()
                registry.register(ScrapeCollector(ProcReader(FS.at()), cfg, list(COLLECTORS)))
                generate_latest(registry)
                with os.fdopen(write_end, "wb") as out:
                    out.write(generate_latest(registry))
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            got = parse(pipe.read().decode())
        os.waitpid(pid, 0)
    assert value(got, "procpilot_orphan_processes", name="pp-orphan-nb", user="nobody") == 1
    assert all(value(got, "procpilot_exporter_collector_success", collector=c) == 1
               for c in COLLECTORS)


def test_fixture_procfs_with_odd_names(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path / "proc")
    fake.add(1, b"init", ppid=0, session=1)
    fake.add(10, b'we"ird\\ na)me (x', ppid=1, session=5, cmdline=b"\xff\xfe\0")
    fake.add(11, b"new\nline", state="Z", ppid=10)
    (tmp_path / "proc" / "12").mkdir()  # vanished
    service = run_exporter(tmp_path, f"--procfs={tmp_path / 'proc'}",
                           config="groups: [{name: '{comm}', cmdline: '.'}]\n")
    try:
        text = service.get()
    finally:
        service.stop()
    got = parse(text)
    assert value(got, "procpilot_zombie_processes", parent='we"ird\\ na)me (x') == 1
    assert value(got, "procpilot_orphan_processes", name='we"ird\\ na)me (x', user="root") == 1
    assert value(got, "procpilot_exporter_procfs_read_errors_total", reason="vanished") == 1
    if promtool():
        assert promtool_check_metrics(text) == ""
