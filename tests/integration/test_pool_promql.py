"""A pool scaling on a PromQL backlog query against a real Prometheus: up to max, down to
zero, and back when work arrives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import prometheus
from tests.support.controller import Controller, running
from tests.support.service import wait_for

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(prometheus.binary() is None,
                       reason="prometheus not installed (Debian package prometheus)"),
]


class Queue:
    """An exporter of one gauge, jobs_backlog, settable by the test."""

    def __init__(self) -> None:
        self.backlog = 0
        queue = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"# TYPE jobs_backlog gauge\njobs_backlog {queue.backlog}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def queue() -> Iterator[Queue]:
    q = Queue()
    thread = threading.Thread(target=q.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield q
    finally:
        q.server.shutdown()
        q.server.server_close()


def workers(c: Controller) -> int:
    return sum(i["state"] == "running" for i in c.status()["pool"]["instances"])


def test_a_promql_backlog_drives_the_pool(tmp_path: Path) -> None:
    with queue() as q:
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
                q.backlog = 30
                wait_for(lambda: workers(c) == 3, 60, what="the pool at max")
                q.backlog = 0
                wait_for(lambda: not c.status()["pool"]["instances"], 60, what="zero workers")
                q.backlog = 5
                wait_for(lambda: workers(c) == 1, 60, what="one worker again")
                assert c.metric("procpilot_pool_metric_value", program="pool",
                                metric="prometheus") == 5
                assert c.metric("procpilot_pool_metric_errors_total", program="pool",
                                metric="prometheus") == 0
        finally:
            server.stop()
