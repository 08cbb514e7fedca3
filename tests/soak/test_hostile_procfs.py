"""The exporter over a hostile procfs: every per-process file (and the host's kernel limits)
may be garbage, cut short, absurdly large numbers, empty, missing or a directory, and comm may
hold any bytes. Whatever hypothesis makes, every collector succeeds, the exposition is well
formed, and only numbers that parse are published."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from procpilot.core.procfs import FS, ProcReader
from procpilot.exporter import config
from procpilot.exporter.collectors import COLLECTORS
from procpilot.exporter.scrape import ScrapeCollector
from tests.soak.scale import pick, report
from tests.support.fakeproc import Extra, FakeProcfs

FILES = ("stat", "cmdline", "status", "io", "limits", "smaps_rollup", "cgroup", "task")
HOST_FILES = ("sys/kernel/pid_max", "sys/kernel/threads-max", "vmstat")
CONFIG = config.ExporterConfig.model_validate({
    "top_owner": True,
    "max_label_length": 32,
    "groups": [
        {"name": "{comm}-{unit}", "comm": ["a", "b"], "children": True, "pss": True},
        {"name": "by-{arg}", "cmdline": r"--name=(?P<arg>\S+)", "per_process": True},
        {"name": "{container}{comm}", "cmdline": ".", "max_series": 2},
    ],
})
TOTALS = {"examples": 0, "files_damaged": 0}


def damage() -> st.SearchStrategy[tuple[str, bytes]]:
    """How one file is spoiled: (kind, bytes used by the kinds that write something)."""
    return st.one_of(
        st.tuples(st.just("garbage"), st.binary(max_size=400)),
        st.tuples(st.sampled_from(["cut", "huge", "empty", "missing", "directory"]),
                  st.just(b"")),
        st.tuples(st.just("cut"), st.binary(max_size=0)),
    )


def spoil(path: Path, kind: str, data: bytes, cut_at: int) -> None:
    if path.is_dir():
        shutil.rmtree(path)
        valid = b""
    else:
        valid = path.read_bytes() if path.exists() else b""
        path.unlink(missing_ok=True)
    if kind == "missing":
        return
    if kind == "directory":
        path.mkdir(parents=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    written = {"garbage": data, "cut": valid[:cut_at % (len(valid) + 1)], "empty": b"",
               "huge": valid.replace(b"1", b"9" * 30).replace(b"0", b"-1")}[kind]
    path.write_bytes(written)


Damage = dict[str, tuple[tuple[str, bytes], int]]  # file -> ((kind, bytes), where to cut)


@dataclass
class Proc:
    comm: bytes
    cmdline: bytes
    ppid: int
    state: str
    damaged: Damage


process = st.builds(
    Proc, comm=st.binary(max_size=24), cmdline=st.binary(max_size=120),
    ppid=st.integers(0, 20), state=st.sampled_from(list("RSDZTtXxKWPI?")),
    damaged=st.dictionaries(st.sampled_from(FILES), st.tuples(damage(), st.integers(0, 500))))


def build(root: Path, procs: list[Proc], host: Damage) -> None:
    fake = FakeProcfs(root)
    (root / "sys" / "kernel").mkdir(parents=True)
    (root / "sys" / "kernel" / "pid_max").write_bytes(b"4194304\n")
    (root / "sys" / "kernel" / "threads-max").write_bytes(b"62000\n")
    (root / "vmstat").write_bytes(b"nr_free_pages 100\npgfault 5\n")
    for n, p in enumerate(procs, start=10):
        d = fake.add(n, p.comm, p.cmdline, Extra(cgroup="0::/system.slice/x.service\n"),
                     ppid=p.ppid, state=p.state)
        (d / "task" / str(n)).mkdir(parents=True)
        (d / "task" / str(n) / "stat").write_bytes((d / "stat").read_bytes())
        for name, ((kind, data), cut_at) in p.damaged.items():
            spoil(d / name, kind, data, cut_at)
            TOTALS["files_damaged"] += 1
    for name, ((kind, data), cut_at) in host.items():
        spoil(root / name, kind, data, cut_at)


@settings(max_examples=int(pick(40, 1500)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(procs=st.lists(process, min_size=1, max_size=6),
       host=st.dictionaries(st.sampled_from(HOST_FILES), st.tuples(damage(), st.integers(0, 50))))
def test_hostile_procfs_never_fails_a_scrape(procs: list[Proc], host: Damage) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, procs, host)
        registry = CollectorRegistry()
        registry.register(ScrapeCollector(ProcReader(FS.at(tmp)), CONFIG, list(COLLECTORS)))
        # twice: the second scrape works from what the first one remembered
        for _ in range(2):
            text = generate_latest(registry).decode()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            success = {s.labels["collector"]: s.value
                       for s in families["procpilot_exporter_collector_success"].samples}
            assert success == dict.fromkeys(COLLECTORS, 1.0), text
            assert all(not math.isnan(s.value) for f in families.values() for s in f.samples
                       if s.name.startswith("procpilot_") and "ratio" not in s.name)
    TOTALS["examples"] += 1


def test_report() -> None:
    """One row for the README's reliability table (runs after the property test)."""
    report("hostile procfs", f"{TOTALS['examples']} generated trees, "
           f"{TOTALS['files_damaged']} damaged files", {"failed collectors": 0})
