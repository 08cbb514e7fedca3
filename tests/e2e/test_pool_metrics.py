"""Pools scaling on work from outside them, with real processes: a URL answering JSON and a
command printing a number, up to max, down to zero, and back."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.controller import Controller, running
from tests.support.service import wait_for
from tests.support.webhook import answering

pytestmark = pytest.mark.timeout(120)
FAST = {"interval": "1s", "scale_up": {"period": "1s"}, "scale_down": {"stabilization": "2s"}}


def depth(n: int) -> bytes:
    return json.dumps({"queue": {"depth": n}}).encode()


def running_workers(c: Controller) -> int:
    return sum(i["state"] == "running" for i in c.status()["pool"]["instances"])


def pool(metric: dict[str, Any]) -> dict[str, Any]:
    return {"pool": {"command": "sleep 1000", "start_seconds": "100ms",
                     "autoscale": {"min": 0, "max": 3, **FAST, "metrics": [metric]}}}


def test_an_http_backlog_scales_to_max_to_zero_and_back(tmp_path: Path) -> None:
    with answering(depth(0)) as b, running(tmp_path, pool({
            "type": "http", "url": f"http://{b.address}/backlog", "field": "queue.depth",
            "target": 10})) as c:
        b.body = depth(25)
        wait_for(lambda: running_workers(c) == 3, what="three workers for 25 queued")
        assert c.metric("procpilot_pool_metric_value", program="pool", metric="http") == 25
        b.body = depth(0)
        wait_for(lambda: not c.status()["pool"]["instances"], what="an empty pool")
        b.body = depth(4)
        wait_for(lambda: running_workers(c) == 1, what="one worker for 4 queued")
        explained = c.ok("explain", target="pool")
        assert any(d["reason"] == "activated" for d in explained)


def test_a_command_metric_and_its_failures(tmp_path: Path) -> None:
    count = tmp_path / "count"
    count.write_text("12\n")
    metric = {"type": "command", "command": [sys.executable, "-c",
                                             f"print(open({str(count)!r}).read())"],
              "target": 5}
    with running(tmp_path, pool(metric)) as c:
        wait_for(lambda: running_workers(c) == 3, what="three workers for 12")
        count.write_text("not a number\n")
        wait_for(lambda: (c.metric("procpilot_pool_metric_errors_total", program="pool",
                                   metric="command") or 0) >= 3, what="failed readings")
        assert running_workers(c) == 3  # a failing metric never scales down
        assert c.stderr().count("cannot read a pool metric") == 1  # once per condition
