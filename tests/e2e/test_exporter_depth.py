"""The exporter's per-group depth against real processes and the real /proc: I/O, faults,
context switches, open files, children, reloads that keep counters, bounded scrapes, and
processes that live between two scrapes accounted through taskstats."""

from __future__ import annotations

import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from procpilot.exporter.exits import ExitListener
from tests.e2e.test_exporter import run_exporter
from tests.support.realprocs import sleepers
from tests.support.service import (
    Samples,
    parse,
    promtool,
    promtool_check_metrics,
    value,
    wait_for,
)


def counter(got: Samples, metric: str, **labels: str) -> float:
    found = value(got, metric, **labels)
    assert found is not None, f"{metric}{labels} missing"
    return found


@contextmanager
def busy_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """pp-busy: 60 open files under a soft limit of 100, 1 MiB written to disk and synced,
    8 MiB of memory touched, then sleeping in short steps (voluntary context switches)."""
    target = tmp_path / "written"
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import os, resource, time
        with open("/proc/self/comm", "w") as f:
            f.write("pp-busy")
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (100, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        held = [os.open("/dev/null", os.O_RDONLY) for _ in range(60)]
        with open({str(target)!r}, "wb") as f:
            f.write(b"x" * (1 << 20))
            f.flush()
            os.fsync(f.fileno())
        memory = bytearray(8 << 20)
        for i in range(0, len(memory), 4096):
            memory[i] = 1
        print("ready", flush=True)
        while True:
            time.sleep(0.01)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_io_faults_switches_and_files_of_a_real_process(tmp_path: Path) -> None:
    service = run_exporter(tmp_path, config="groups: [{name: busy, comm: [pp-busy]}]\n")
    try:
        with busy_process(tmp_path):
            got = service.scrape()
            assert counter(got, "procpilot_group_write_bytes_total", group="busy") >= 1 << 20
            assert counter(got, "procpilot_group_minor_page_faults_total", group="busy") >= 2048
            assert counter(got, "procpilot_group_open_fds", group="busy") >= 60
            ratio = counter(got, "procpilot_group_worst_fd_ratio", group="busy")
            assert 0.6 <= ratio <= 0.7  # 60-70 open (the interpreter's own too) of 100
            switches = "procpilot_group_context_switches_total"
            before = counter(got, switches, group="busy", type="voluntary")
            later = wait_for(lambda: counter(service.scrape(), switches, group="busy",
                                             type="voluntary") > before, what="switches")
            assert later
            assert counter(got, "procpilot_group_virtual_memory_bytes", group="busy") > 8 << 20
            assert counter(got, "procpilot_group_process_states", group="busy",
                           state="sleeping") + counter(got, "procpilot_group_process_states",
                                                       group="busy", state="running") == 1
    finally:
        assert service.stop() == 0


def test_children_of_a_real_process_join_its_group(tmp_path: Path) -> None:
    config = "groups: [{name: tree, comm: [pp-tree-top], children: true}]\n"
    service = run_exporter(tmp_path, config=config)
    top = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import subprocess, sys
        with open("/proc/self/comm", "w") as f:
            f.write("pp-tree-top")
        kids = [subprocess.Popen(["sleep", "300"]) for _ in range(3)]
        print("ready", flush=True)
        sys.stdin.read()
        for k in kids:
            k.kill()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert top.stdout is not None
        assert top.stdout.readline() == "ready\n"
        assert value(service.scrape(), "procpilot_group_processes", group="tree") == 4
    finally:
        top.communicate("")
        assert service.stop() == 0


def test_process_metrics_host_limits_and_thread_states(tmp_path: Path) -> None:
    service = run_exporter(tmp_path)
    try:
        text = service.get()
    finally:
        service.stop()
    got = parse(text)
    assert counter(got, "process_resident_memory_bytes") > 0
    assert counter(got, "process_cpu_seconds_total") > 0
    with open("/proc/sys/kernel/pid_max") as f:
        assert value(got, "procpilot_pids_limit") == int(f.read())
    assert counter(got, "procpilot_threads_limit") > 0
    states = sum(v for (name, _), v in got.items() if name == "procpilot_thread_states")
    assert abs(states - counter(got, "procpilot_threads")) < 50  # threads come and go
    if promtool():
        assert promtool_check_metrics(text) == ""


def test_top_views_name_owners_when_asked(tmp_path: Path) -> None:
    service = run_exporter(tmp_path, config="top_owner: true\n")
    try:
        got = service.scrape()
    finally:
        service.stop()
    top = [dict(labels) for name, labels in got if
           name == "procpilot_top_process_resident_memory_bytes"]
    assert top and all("owner" in labels for labels in top)


# --- issue 9: regressions ---------------------------------------------------------------------


def test_a_reload_keeps_group_counters(tmp_path: Path) -> None:
    """Counters must never go back: a reload used to rebuild them, dropping what members that
    had exited used."""
    config = "groups: [{name: burn, comm: [pp-reload-burn]}]\n"
    service = run_exporter(tmp_path, config=config)
    cpu = "procpilot_group_cpu_seconds_total"
    try:
        with sleepers("pp-reload-burn", 2, burn=True) as procs:
            wait_for(lambda: counter(service.scrape(), cpu, group="burn", mode="user") > 0.5,
                     what="CPU used")
            procs[0].kill()
            procs[0].wait()
            before = counter(service.scrape(), cpu, group="burn", mode="user")
            service.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "config reloaded" in service.log(), what="reload")
            after = counter(service.scrape(), cpu, group="burn", mode="user")
            assert after >= before
    finally:
        assert service.stop() == 0


def test_a_failed_reload_is_exported(tmp_path: Path) -> None:
    service = run_exporter(tmp_path)
    cfg = tmp_path / "exporter.yaml"
    ok, failures = ("procpilot_exporter_config_last_reload_successful",
                    "procpilot_exporter_config_reloads_total")
    try:
        assert value(service.scrape(), ok) == 1
        cfg.write_text("groups: [{name: broken}]\n")
        service.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload failed" in service.log(), what="reload failure")
        got = service.scrape()
        assert value(got, ok) == 0
        assert value(got, failures, result="failure") == 1
        cfg.write_text("groups: []\n")
        service.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: value(service.scrape(), ok) == 1, what="successful reload exported")
    finally:
        assert service.stop() == 0


def test_long_arguments_do_not_blow_up_a_scrape(tmp_path: Path) -> None:
    """1,500 processes whose 30 KB argv[0] names their group: one scrape used to take 210 MB."""
    config = 'groups: [{name: "{arg0}", cmdline: "^(?P<arg0>\\\\S+)"}]\n'
    service = run_exporter(tmp_path, config=config)
    procs = [subprocess.Popen([("x" * 30_000) + str(i), "600"], executable="/bin/sleep")
             for i in range(1500)]
    try:
        text = service.get()
        status = Path(f"/proc/{service.proc.pid}/status").read_text()
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        assert service.stop() == 0
    got = parse(text)
    assert len(text) < 16 << 20
    rss_kib = int(next(line.split()[1] for line in status.splitlines()
                       if line.startswith("VmHWM:")))
    assert rss_kib < 128 << 10
    assert counter(got, "procpilot_exporter_label_values_truncated_total") >= 1000
    assert counter(got, "procpilot_exporter_series_dropped_total", reason="max_groups") >= 500
    assert max(len(dict(labels).get("group", "")) for _, labels in got) <= 256


# --- taskstats ----------------------------------------------------------------------------


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="taskstats needs CAP_NET_ADMIN")
def test_processes_that_live_between_two_scrapes_are_accounted(tmp_path: Path) -> None:
    """300 processes of one group, each burning about 20 ms of CPU, start and end between two
    scrapes: the group's CPU rises by at least 90 % of what getrusage says they used."""
    config = "groups: [{name: short, comm: [pp-short]}]\n"
    service = run_exporter(tmp_path, config=config)
    cpu = "procpilot_group_cpu_seconds_total"
    burner = textwrap.dedent("""
        import time
        with open("/proc/self/comm", "w") as f:
            f.write("pp-short")
        start = time.process_time()
        while time.process_time() - start < 0.02:
            pass
    """)
    try:
        first = service.scrape()
        if value(first, "procpilot_exporter_taskstats_listening") != 1:
            pytest.skip(f"taskstats unavailable here: {service.log()}")
        before = sum(counter(first, cpu, group="short", mode=m) for m in ("user", "system"))
        used_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(300):
            subprocess.run([sys.executable, "-S", "-c", burner], check=True)
        used_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = (used_after.ru_utime - used_before.ru_utime
                + used_after.ru_stime - used_before.ru_stime)
        got = wait_for(lambda: (g := service.scrape()) and value(
            g, "procpilot_exporter_taskstats_exits_total", result="grouped") == 300 and g,
            what="300 exits credited")
        after = sum(counter(got, cpu, group="short", mode=m) for m in ("user", "system"))
        assert after - before >= 0.9 * used, (after - before, used)
        assert after - before <= 1.1 * used, (after - before, used)
    finally:
        assert service.stop() == 0


def test_without_taskstats_the_exporter_says_so(tmp_path: Path) -> None:
    config = "groups: [{name: any, comm: [pp-nothing]}]\n"
    service = run_exporter(tmp_path, "--no-taskstats", config=config)
    try:
        got = service.scrape()
    finally:
        assert service.stop() == 0
    assert value(got, "procpilot_exporter_taskstats_listening") == 0
    assert value(got, "procpilot_exporter_taskstats_exits_total", result="grouped") == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_taskstats_without_cap_net_admin_says_why() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setuid(pwd.getpwnam("nobody").pw_uid)
            reason = ExitListener().start() or ""
            os.write(write_end, reason.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        reason = pipe.read().decode()
    os.waitpid(pid, 0)
    assert reason == "needs CAP_NET_ADMIN (root): Operation not permitted"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="needs root and util-linux unshare")
def test_taskstats_in_a_pid_namespace_says_why() -> None:
    code = "from procpilot.exporter.exits import ExitListener; print(ExitListener().start())"
    out = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c",
                          code], capture_output=True, text=True, check=True, timeout=60)
    assert "hostPID" in out.stdout
