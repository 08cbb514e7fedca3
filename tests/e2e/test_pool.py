"""A pool of real workers under real load: up to max while a flag file exists, back to min after.

The workers burn a few milliseconds of CPU per 50 ms while the flag exists (some 5 % of a
core each, against a 2 % target) and only poll for it otherwise, so three of them stay
light on a shared machine while the pool's utilization is far from 1 in both phases.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from tests.support.controller import Controller, running
from tests.support.service import Samples, parse, promtool, promtool_check_metrics, value, wait_for

pytestmark = pytest.mark.timeout(120)

WORKER = """
import os, sys, time
flag = sys.argv[1]
while True:
    if os.path.exists(flag):
        until = time.process_time() + 0.003
        while time.process_time() < until:
            pass
        time.sleep(0.05)
    else:
        time.sleep(0.1)
"""
LOG_FIELDS = {"ts", "level", "logger", "msg", "program", "from", "to", "utilization", "reason"}



def pool_state(c: Controller) -> tuple[Samples, dict[str, float | None], str]:
    """One scrape: its samples, the pool's series by short name, and the text itself."""
    text = c.metrics()
    samples = parse(text)
    names = ("workers", "desired_workers", "min_workers", "max_workers", "at_max",
             "cpu_utilization_ratio", "cpu_target_cores", "last_scale_time_seconds")
    pool = {n: value(samples, "procpilot_pool_" + n, program="burn") for n in names}
    for direction in ("up", "down"):
        pool[direction] = value(samples, "procpilot_pool_scale_events_total",
                                program="burn", direction=direction)
    return samples, pool, text


def scale_lines(c: Controller) -> list[dict[str, str]]:
    """The fields of every 'scaling pool' log line so far (logfmt)."""
    lines = []
    for line in c.stderr().splitlines():
        if 'msg="scaling pool"' in line:
            lines.append(dict(pair.partition("=")[::2] for pair in shlex.split(line)))
    return lines


def test_pool_follows_the_load_and_says_so(tmp_path: Path) -> None:
    flag = tmp_path / "load"
    programs = {
        "burn": {
            "command": [sys.executable, "-c", WORKER, str(flag)],
            "start_seconds": "100ms",
            "stop": {"timeout": "2s"},
            "autoscale": {"min": 1, "max": 3, "cpu_target": "2%", "interval": "500ms",
                          "warmup": 0, "scale_down": {"stabilization": "1s"}},
            "limits": {"check_interval": "200ms"},
        },
        "fixed": {"command": ["sleep", "1000"], "start_seconds": "100ms"},
    }
    with running(tmp_path, programs) as c:
        c.wait_state("burn", "running")
        samples, pool, _ = pool_state(c)
        assert (pool["min_workers"], pool["max_workers"]) == (1, 3)
        assert pool["cpu_target_cores"] == pytest.approx(0.02)
        assert (pool["up"], pool["down"]) == (0, 0)  # idle at min: nothing to do yet
        assert not [k for k in samples if k[0].startswith("procpilot_pool_")
                    and ("program", "fixed") in k[1]]

        flag.touch()

        def saturated() -> tuple[dict[str, float | None], str] | None:
            _, pool, text = pool_state(c)
            full = (pool["workers"], pool["desired_workers"], pool["at_max"]) == (3, 3, 1)
            return (pool, text) if full else None

        pool, text = wait_for(saturated, what="pool at max under load")
        assert pool["up"] is not None and pool["up"] > 0
        assert pool["cpu_utilization_ratio"] is not None and pool["cpu_utilization_ratio"] > 1
        assert pool["last_scale_time_seconds"] is not None
        ups = scale_lines(c)
        assert ups and all(set(line) == LOG_FIELDS for line in ups)
        assert ups[-1]["program"] == "burn" and ups[-1]["to"] == "3"
        assert int(ups[-1]["from"]) < 3 and float(ups[-1]["utilization"]) > 1
        if promtool() is not None:
            assert promtool_check_metrics(text) == ""

        flag.unlink()

        def back_to_min() -> dict[str, float | None] | None:
            _, pool, _ = pool_state(c)
            idle = (pool["workers"], pool["desired_workers"], pool["at_max"]) == (1, 1, 0)
            return pool if idle and pool["down"] else None

        pool = wait_for(back_to_min, what="pool back at min after the load")
        assert pool["cpu_utilization_ratio"] is not None and pool["cpu_utilization_ratio"] < 1
        downs = scale_lines(c)[len(ups):]
        assert downs and all(set(line) == LOG_FIELDS for line in downs)
        assert downs[-1]["program"] == "burn" and downs[-1]["to"] == "1"
        assert int(downs[-1]["from"]) > 1 and float(downs[-1]["utilization"]) < 1


@pytest.mark.skipif(promtool() is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_a_fresh_pool(tmp_path: Path) -> None:
    programs = {"idle": {"command": ["sleep", "1000"], "start_seconds": "100ms",
                         "autoscale": {"min": 1, "max": 2, "cpu_target": 0.5}}}
    with running(tmp_path, programs) as c:
        c.wait_state("idle", "running")
        assert promtool_check_metrics(c.metrics()) == ""
