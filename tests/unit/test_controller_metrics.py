"""The controller's exposition rendered from hand-made views: which pool series exist when."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import generate_latest

from procpilot.controller.metrics import ControllerCollector, make_registry
from procpilot.controller.view import ControllerView, InstanceView, PoolView, ProgramView
from procpilot.core.reloads import Reloads
from tests.support.service import Samples, parse, value

POOL_METRICS = (
    "procpilot_pool_workers",
    "procpilot_pool_desired_workers",
    "procpilot_pool_min_workers",
    "procpilot_pool_max_workers",
    "procpilot_pool_cpu_utilization_ratio",
    "procpilot_pool_cpu_target_cores",
    "procpilot_pool_scale_events_total",
    "procpilot_pool_last_scale_time_seconds",
    "procpilot_pool_at_max",
)


def instance(program: str, index: int, state: str = "running") -> InstanceView:
    return InstanceView(id=f"{program}:{index}", state=state, pid=1000 + index,
                        uptime_seconds=5.0, restarts=0, rss_bytes=1024, backoff_seconds=0.0,
                        last_exit=None, started_at=1_700_000_000.0)


FRESH_POOL = PoolView(min=1, max=4, pinned=None, utilization=None, desired=1,
                      cpu_target_cores=0.5, at_max=False, scale_events={},
                      last_scale_time=None)


def scrape(*programs: ProgramView) -> Samples:
    view = ControllerView(programs=programs, reaped_processes=0, reloads=Reloads(lambda: 0.0, 0.0))
    collector = ControllerCollector(lambda: view)
    return parse(generate_latest(make_registry(collector)).decode())


def series(samples: Samples, program: str) -> Samples:
    return {k: v for k, v in samples.items()
            if k[0].startswith("procpilot_pool_") and ("program", program) in k[1]}



def test_only_programs_with_autoscale_have_pool_series() -> None:
    fixed = ProgramView("web", "running", 1, None, (instance("web", 0),))
    workers = ProgramView("workers", "running", 1, FRESH_POOL, (instance("workers", 0),))
    samples = scrape(fixed, workers)
    assert series(samples, "web") == {}
    assert series(samples, "workers")


def test_fresh_pool_counts_zero_events_and_has_no_measurement_yet() -> None:
    samples = scrape(ProgramView("workers", "running", 1, FRESH_POOL, (instance("workers", 0),)))
    got = {name for name, _ in series(samples, "workers")}
    absent = {"procpilot_pool_cpu_utilization_ratio", "procpilot_pool_last_scale_time_seconds"}
    assert got == set(POOL_METRICS) - absent
    for direction in ("up", "down"):
        assert value(samples, "procpilot_pool_scale_events_total",
                     program="workers", direction=direction) == 0
    assert value(samples, "procpilot_pool_at_max", program="workers") == 0
    assert value(samples, "procpilot_pool_cpu_target_cores", program="workers") == 0.5


def test_saturated_pool_after_scaling() -> None:
    instances = (instance("workers", 0), instance("workers", 1), instance("workers", 2),
                 instance("workers", 3, state="starting"))
    view = replace(FRESH_POOL, utilization=2.5, desired=4, at_max=True,
                   scale_events={"up": 2, "down": 1}, last_scale_time=1_700_000_123.5)
    samples = scrape(ProgramView("workers", "running", 4, view, instances))
    expected = {
        "procpilot_pool_workers": 3,  # running only
        "procpilot_pool_desired_workers": 4,
        "procpilot_pool_min_workers": 1,
        "procpilot_pool_max_workers": 4,
        "procpilot_pool_cpu_utilization_ratio": 2.5,
        "procpilot_pool_last_scale_time_seconds": 1_700_000_123.5,
        "procpilot_pool_at_max": 1,
    }
    for name, want in expected.items():
        assert value(samples, name, program="workers") == want, name
    events = "procpilot_pool_scale_events_total"
    assert value(samples, events, program="workers", direction="up") == 2
    assert value(samples, events, program="workers", direction="down") == 1


def test_status_keeps_the_contract_pool_keys() -> None:
    pool = replace(FRESH_POOL, utilization=0.4, desired=2, at_max=True)
    view = ProgramView("workers", "running", 2, pool, (instance("workers", 0),))
    assert view.status()["pool"] == {"min": 1, "max": 4, "pinned": None, "utilization": 0.4,
                                     "desired": 2}
