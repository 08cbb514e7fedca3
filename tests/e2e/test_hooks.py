"""Hooks with real processes: a webhook receiver on loopback and a command hook get the
events they listen for, with the instance's last lines of output."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.controller import running
from tests.support.service import wait_for

pytestmark = pytest.mark.timeout(120)


@contextmanager
def receiver(status: int = 200) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1: (its URL, the JSON bodies POSTed to it)."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            assert self.headers["Content-Type"] == "application/json"
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_and_command_hooks_get_their_events(tmp_path: Path) -> None:
    env_file = tmp_path / "hook.env"
    dump = f"env | grep ^PROCPILOT_ | sort > {env_file}"
    with receiver() as (url, bodies), receiver(status=503) as (down, _):
        programs = {"crash": {
            "command": ["sh", "-c", "echo first words; echo last words >&2; exit 3"],
            "start_seconds": "100ms", "restart": {"max_restarts": 0},
            "hooks": [{"events": ["exited", "fatal"], "url": url},
                      {"events": ["fatal"], "command": ["sh", "-c", dump]},
                      {"events": ["fatal"], "url": down}]}}
        with running(tmp_path, programs) as c:
            wait_for(lambda: len(bodies) == 2 and env_file.exists(), what="the hooks")
            # Up to four hooks run at once: they may arrive in any order.
            by_event = {b["event"]: b for b in bodies}
            assert sorted(by_event) == ["exited", "fatal"]
            assert by_event["exited"]["time"] <= by_event["fatal"]["time"]
            fatal = by_event["fatal"]
            assert {k: fatal[k] for k in ("program", "instance", "state", "reason",
                                          "exit_code", "log_tail")} == {
                "program": "crash", "instance": "crash:0", "state": "fatal",
                "reason": "failed_start", "exit_code": 3,
                "log_tail": ["first words", "last words"]}
            wait_for(lambda: "PROCPILOT_STATE=fatal" in env_file.read_text(),
                     what="the command's output")
            env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
            assert {k: env[k] for k in ("PROCPILOT_EVENT", "PROCPILOT_PROGRAM",
                                        "PROCPILOT_INSTANCE", "PROCPILOT_EXIT_CODE")} == {
                "PROCPILOT_EVENT": "fatal", "PROCPILOT_PROGRAM": "crash",
                "PROCPILOT_INSTANCE": "crash:0", "PROCPILOT_EXIT_CODE": "3"}
            assert json.loads(env["PROCPILOT_EVENT_JSON"])["log_tail"][-1] == "last words"
            wait_for(lambda: c.metric("procpilot_controller_hook_failures_total",
                                      kind="webhook", reason="error") == 1,
                     what="the 503 counted")
            assert c.metric("procpilot_controller_hook_runs_total", kind="webhook") == 3
            assert c.metric("procpilot_controller_hook_runs_total", kind="command") == 1
            assert "hook failed" in c.stderr() and "HTTP status 503" in c.stderr()
