"""Collectors on fake procfs trees: exact numbers for situations set up precisely."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric

from procpilot.core.procfs import FS, PF_KTHREAD, ProcReader
from procpilot.exporter import config
from procpilot.exporter.collectors import COLLECTORS, Collector, Shared
from procpilot.exporter.collectors.orphans import is_orphan
from tests.support.fakeproc import FakeProcfs


def samples(metrics: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value for m in metrics for s in m.samples
    }


def make(name: str, cfg: config.ExporterConfig | None = None,
         shared: Shared | None = None) -> Collector:
    collector = COLLECTORS[name](shared or Shared())
    collector.configure(cfg or config.ExporterConfig())
    return collector


def run(name: str, reader: ProcReader, cfg: config.ExporterConfig | None = None,
        shared: Shared | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(list(make(name, cfg, shared).collect(reader.snapshot())))


def test_summary_counts_every_state(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    for pid, state in enumerate("RSSDTtZXIW", start=10):
        fake.add(pid, b"p", state=state, threads=2, rss_pages=1)
    got = run("summary", ProcReader(FS.at(str(tmp_path))))
    by_state = {dict(k[1])["state"]: v for k, v in got.items() if k[0] == "procpilot_processes"}
    assert by_state == {"running": 1, "sleeping": 2, "disk_sleep": 1, "stopped": 1,
                        "tracing_stop": 1, "zombie": 1, "dead": 1, "idle": 1, "other": 1}
    assert got[("procpilot_threads", ())] == 20


def test_zombies_by_parent_with_oldest_start(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"leaky")
    fake.add(11, b"z", state="Z", ppid=10, start=500)
    fake.add(12, b"z", state="Z", ppid=10, start=300)
    fake.add(13, b"z", state="Z", ppid=99)  # parent vanished mid-scan
    fake.add(14, b"z", state="Z", ppid=10, threads=3)  # its main thread exited: running
    got = run("zombies", ProcReader(FS.at(str(tmp_path))))
    assert got[("procpilot_zombie_processes", (("parent", "leaky"),))] == 2
    assert got[("procpilot_zombie_processes", (("parent", "unknown"),))] == 1
    oldest = got[("procpilot_zombie_oldest_start_time_seconds", (("parent", "leaky"),))]
    fs = FS.at(str(tmp_path))
    assert oldest == fs.boot_time + 300 / fs.ticks


@pytest.mark.parametrize(
    ("desc", "fields", "orphan"),
    [
        ("leader gone, re-parented to init", {"ppid": 1, "session": 50}, True),
        ("leader gone, parent: subreaper of another session", {"ppid": 30, "session": 50}, True),
        ("leader gone, original parent alive in session", {"ppid": 40, "session": 50}, False),
        ("session leader itself (setsid daemon)", {"ppid": 1, "session": 60}, False),
        ("leader still exists", {"ppid": 1, "session": 20}, False),
        ("kernel thread", {"ppid": 2, "session": 0, "flags": PF_KTHREAD}, False),
        ("zombie", {"ppid": 1, "session": 50, "state": "Z"}, False),
        ("main thread exited, others running", {"ppid": 1, "session": 50, "state": "Z",
                                                "threads": 2}, True),
    ],
)
def test_orphan_rule(tmp_path: Path, desc: str, fields: dict[str, int], orphan: bool) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(1, b"init", ppid=0, session=1)
    fake.add(20, b"shell", ppid=1, session=20)
    fake.add(30, b"reaper", ppid=1, session=30)
    fake.add(40, b"worker", ppid=1, session=50)
    pid = 60
    fake.add(pid, b"subject", **fields)  # type: ignore[arg-type]
    snap = ProcReader(FS.at(str(tmp_path))).snapshot()
    assert is_orphan(snap.procs[pid], snap.procs) is orphan, desc


def test_orphans_exclusions(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(1, b"init", ppid=0, session=1)
    fake.add(10, b"stray", ppid=1, session=5)
    fake.add(11, b"stray", ppid=1, session=5)
    fake.add(12, b"olddaemon", ppid=1, session=6)
    cfg = config.ExporterConfig.model_validate({"orphans": {"exclude": ["olddaemon"]}})
    got = run("orphans", ProcReader(FS.at(str(tmp_path))), cfg)
    assert [(dict(k[1])["name"], v) for k, v in got.items()] == [("stray", 2)]


def group_cfg(*groups: dict[str, object], **top: object) -> config.ExporterConfig:
    return config.ExporterConfig.model_validate({"groups": list(groups), **top})


def test_groups_first_match_templates_and_static_zero(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"nginx", rss_pages=1, threads=3, start=100)
    fake.add(11, b"nginx", rss_pages=2, threads=1, start=50)
    fake.add(12, b"java", cmdline=b"java\0-jar\0/srv/billing.jar\0")
    fake.add(13, b"java", cmdline=b"java\0-jar\0/srv/search.jar\0")
    fake.add(14, b"kworker", flags=PF_KTHREAD)
    cfg = group_cfg(
        {"name": "web", "comm": ["nginx"]},
        {"name": "java-{app}", "cmdline": r"-jar \S*/(?P<app>\w+)\.jar"},
        {"name": "absent", "comm": ["postgres"]},
        {"name": "{comm}", "cmdline": "."},
    )
    reader = ProcReader(FS.at(str(tmp_path)))
    got = run("groups", reader, cfg)
    count = {dict(k[1])["group"]: v for k, v in got.items() if k[0] == "procpilot_group_processes"}
    assert count == {"web": 2, "absent": 0, "java-billing": 1, "java-search": 1}
    assert got[("procpilot_group_threads", (("group", "web"),))] == 4
    web_rss = got[("procpilot_group_resident_memory_bytes", (("group", "web"),))]
    assert web_rss == 3 * reader.fs.page_size
    assert got[("procpilot_group_oldest_start_time_seconds", (("group", "web"),))] == (
        reader.fs.boot_time + 50 / reader.fs.ticks
    )


def test_group_cpu_stays_monotonic_when_members_exit(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"w", utime=100, stime=10)
    fake.add(11, b"w", utime=200, stime=20)
    reader = ProcReader(FS.at(str(tmp_path)))
    groups = make("groups", group_cfg({"name": "w", "comm": ["w"]}))
    key = ("procpilot_group_cpu_seconds_total", (("group", "w"), ("mode", "user")))
    first = samples(list(groups.collect(reader.snapshot())))[key]
    assert first == 300 / reader.fs.ticks
    fake.remove(11)
    fake.add(10, b"w", utime=150, stime=10)
    second = samples(list(groups.collect(reader.snapshot())))[key]
    assert second == 350 / reader.fs.ticks
    assert samples(list(groups.collect(reader.snapshot())))[
        ("procpilot_group_processes", (("group", "w"),))] == 1


def test_per_process_series_capped_and_drops_counted(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    for pid in range(10, 15):
        fake.add(pid, b"w")
    shared = Shared()
    cfg = group_cfg({"name": "w", "comm": ["w"], "per_process": True, "max_series": 3})
    got = run("groups", ProcReader(FS.at(str(tmp_path))), cfg, shared)
    per = [k for k in got if k[0] == "procpilot_process_resident_memory_bytes"]
    assert len(per) == 3
    assert shared.caps.dropped["max_series"] == 2


def test_template_groups_capped_by_max_groups(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    for pid in range(10, 15):
        fake.add(pid, b"c%d" % pid)
    shared = Shared()
    cfg = group_cfg({"name": "{comm}", "comm": [f"c{p}" for p in range(10, 15)]}, max_groups=2)
    got = run("groups", ProcReader(FS.at(str(tmp_path))), cfg, shared)
    assert len([k for k in got if k[0] == "procpilot_group_processes"]) == 2
    assert shared.caps.dropped["max_groups"] == 3


def test_top_by_memory_and_cpu(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    for pid in range(10, 20):
        fake.add(pid, b"p%d" % pid, rss_pages=pid, utime=pid)
    reader = ProcReader(FS.at(str(tmp_path)))
    top = make("top", config.ExporterConfig(top_processes=3))
    got = samples(list(top.collect(reader.snapshot())))
    mem = sorted(dict(k[1])["pid"] for k in got if k[0].endswith("memory_bytes"))
    assert mem == ["17", "18", "19"]
    fake.add(12, b"p12", rss_pages=12, utime=10_000)  # suddenly busy
    got = samples(list(top.collect(reader.snapshot())))
    cpu = [dict(k[1])["pid"] for k in got if k[0].endswith("cpu_usage_ratio")]
    assert "12" in cpu
