"""A pool scaling on a PromQL backlog query against a real Prometheus: up to max, down to
zero, and back when work arrives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import prometheus
from tests.support.controller import Controller, running
from tests.support.service import wait_for
from tests.support.webhook import answering

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(prometheus.binary() is None,
                       reason="prometheus not installed (Debian package prometheus)"),
]


def backlog(n: int) -> bytes:
    return f"# TYPE jobs_backlog gauge\njobs_backlog {n}\n".encode()


def workers(c: Controller) -> int:
    return sum(i["state"] == "running" for i in c.status()["pool"]["instances"])


def test_a_promql_backlog_drives_the_pool(tmp_path: Path) -> None:
    with answering(backlog(0), "text/plain; version=0.0.4") as q:
        server = prometheus.start(tmp_path, {"queue": q.address})
        try:
            server.wait_for('up{job="queue"} == 1')
            programs = {"pool": {"command": "sleep 1000", "start_seconds": "100ms",
                                 "autoscale": {
                                     "min": 0, "max": 3, "interval": "1s",
                                     "scale_up": {"period": "1s"},
                                     "scale_down": {"stabilization": "3s"},
                                     "metrics": [{"type": "prometheus", "server": server.url,
                                                  "query": "sum(jobs_backlog)",
                                                  "target": 10}]}}}
            with running(tmp_path, programs) as c:
                q.body = backlog(30)
                wait_for(lambda: workers(c) == 3, 60, what="the pool at max")
                q.body = backlog(0)
                wait_for(lambda: not c.status()["pool"]["instances"], 60, what="zero workers")
                q.body = backlog(5)
                wait_for(lambda: workers(c) == 1, 60, what="one worker again")
                assert c.metric("procpilot_pool_metric_value", program="pool",
                                metric="prometheus") == 5
                assert c.metric("procpilot_pool_metric_errors_total", program="pool",
                                metric="prometheus") == 0
        finally:
            server.stop()
