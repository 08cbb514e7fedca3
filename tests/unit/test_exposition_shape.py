"""The exposition's shape (family names, types, label names) stays what users rely on.

Both services render a fixed situation: the exporter a fixture procfs tree with every
collector and groups of all kinds, the controller a view with a fixed program and a pool.
Every family in tests/unit/data/exposition_shape.json, recorded before metric families were
declared in one place, must still be there with the same type and labels; new families may
be added. A change to a recorded one must be deliberate (rewrite the file with
``python -m tests.unit.test_exposition_shape``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from procpilot.controller.metrics import ControllerCollector, make_registry
from procpilot.controller.states import ExitStatus
from procpilot.controller.view import (
    ControllerView,
    InstanceView,
    LastExit,
    LimitView,
    PoolView,
    ProgramView,
)
from procpilot.core.procfs import FS, ProcReader
from procpilot.core.reloads import Reloads
from procpilot.exporter import config
from procpilot.exporter.collectors import COLLECTORS
from procpilot.exporter.scrape import ScrapeCollector
from tests.support.fakeproc import FakeProcfs

RECORDED = Path(__file__).parent / "data" / "exposition_shape.json"
Shape = dict[str, dict[str, list[str]]]  # service -> family -> [type, *label names]


def shape(text: str) -> dict[str, list[str]]:
    out = {}
    for family in text_string_to_metric_families(text):
        labels = sorted({name for s in family.samples for name in s.labels})
        out[family.name] = [family.type, *labels]
    return out


def exporter_text(root: Path) -> str:
    fake = FakeProcfs(root)
    fake.add(1, b"init", ppid=0)
    fake.add(10, b"web", b"web\0--app=shop\0", ppid=1, utime=50)
    fake.add(11, b"web", b"web\0--app=shop\0", ppid=10, session=10)
    fake.add(20, b"leaky", ppid=1, session=99)  # an orphan: leader 99 is gone
    fake.add(21, b"dead", state="Z", ppid=20)
    cfg = config.ExporterConfig.model_validate({"groups": [
        {"name": "static", "comm": ["web"], "per_process": True, "max_series": 1, "pss": True},
        {"name": "app-{app}", "cmdline": "--app=(?P<app>\\w+)"},
        {"name": "{comm}", "comm": ["leaky"]},
    ]})
    registry = CollectorRegistry()
    registry.register(ScrapeCollector(ProcReader(FS.at(str(root))), cfg, list(COLLECTORS)))
    return generate_latest(registry).decode()


def controller_text() -> str:
    last = LastExit(ExitStatus(None, 9), "oom_kill", 1_700_000_000.0)
    inst = InstanceView(id="web:0", state="running", pid=10, uptime_seconds=5.0, restarts=1,
                        rss_bytes=1024, backoff_seconds=0.0, last_exit=last,
                        started_at=1_700_000_000.0)
    pool = PoolView(min=1, max=4, pinned=None, utilization=0.5, desired=2, cpu_target_cores=0.5,
                    at_max=False, scale_events={"up": 1}, last_scale_time=1_700_000_000.0)
    programs = (
        ProgramView("web", "running", 1, None, (inst,), {"oom_kill": 1}, 137,
                    limits=(LimitView("memory", 2**20, "polled"),), cpu_user=1.0, cpu_system=0.5),
        ProgramView("pool", "running", 2, pool, ()),
    )
    view = ControllerView(programs=programs, reaped_processes=1, reloads=Reloads(lambda: 0.0, 0.0))
    collector = ControllerCollector(lambda: view)
    return generate_latest(make_registry(collector)).decode()


def current() -> Shape:
    with tempfile.TemporaryDirectory() as tmp:
        return {"exporter": shape(exporter_text(Path(tmp) / "proc")),
                "controller": shape(controller_text())}


def test_names_types_and_labels_are_unchanged() -> None:
    """Families may be added; none recorded may vanish or change its type or labels."""
    now = current()
    for service, families in json.loads(RECORDED.read_text()).items():
        assert {name: now[service].get(name) for name in families} == families


if __name__ == "__main__":
    RECORDED.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
    sys.exit(0)
