"""Pools scaling on work from outside them, with real processes: a URL answering JSON and a
command printing a number, up to max, down to zero, and back."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.controller import Controller, running
from tests.support.service import wait_for

pytestmark = pytest.mark.timeout(120)
FAST = {"interval": "1s", "scale_up": {"period": "1s"}, "scale_down": {"stabilization": "2s"}}


class Backlog:
    """A URL answering {"queue": {"depth": N}}, N settable by the test."""

    def __init__(self) -> None:
        self.depth = 0
        backlog = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps({"queue": {"depth": backlog.depth}}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/backlog"


@contextmanager
def backlog() -> Iterator[Backlog]:
    b = Backlog()
    thread = threading.Thread(target=b.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield b
    finally:
        b.server.shutdown()
        b.server.server_close()


def running_workers(c: Controller) -> int:
    return sum(i["state"] == "running" for i in c.status()["pool"]["instances"])


def pool(metric: dict[str, Any]) -> dict[str, Any]:
    return {"pool": {"command": "sleep 1000", "start_seconds": "100ms",
                     "autoscale": {"min": 0, "max": 3, **FAST, "metrics": [metric]}}}


def test_an_http_backlog_scales_to_max_to_zero_and_back(tmp_path: Path) -> None:
    with backlog() as b, running(tmp_path, pool({
            "type": "http", "url": b.url, "field": "queue.depth", "target": 10})) as c:
        b.depth = 25
        wait_for(lambda: running_workers(c) == 3, what="three workers for 25 queued")
        assert c.metric("procpilot_pool_metric_value", program="pool", metric="http") == 25
        b.depth = 0
        wait_for(lambda: not c.status()["pool"]["instances"], what="an empty pool")
        b.depth = 4
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
