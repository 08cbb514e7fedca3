"""Health checks against real local servers and real commands."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from procpilot.controller.config import Health
from procpilot.controller.health import check_once
from procpilot.controller.reaper import Reaper
from procpilot.controller.spawn import SpawnSpec

pytestmark = pytest.mark.timeout(60)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = {"/ok": 200, "/moved": 302, "/broken": 500}.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def http_server() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def check(health: dict[str, Any], user: str | None = None) -> bool:
    async def main() -> bool:
        reaper = Reaper(asyncio.get_running_loop())
        reaper.install()
        try:
            return await check_once(Health.model_validate(health), reaper,
                                    SpawnSpec(argv=["true"], capture_output=False, user=user))
        finally:
            reaper.uninstall()

    return asyncio.run(main())


def test_http_status_decides() -> None:
    with http_server() as port:
        assert check({"http": f"http://127.0.0.1:{port}/ok"})
        assert check({"http": f"http://127.0.0.1:{port}/moved"})
        assert not check({"http": f"http://127.0.0.1:{port}/broken"})
        assert not check({"http": f"http://127.0.0.1:{port}/missing"})
    assert not check({"http": f"http://127.0.0.1:{closed_port()}/ok"})


def test_tcp_connect_decides() -> None:
    with http_server() as port:
        assert check({"tcp": f"127.0.0.1:{port}"})
    assert not check({"tcp": f"127.0.0.1:{closed_port()}"})


def test_exec_status_and_timeout() -> None:
    assert check({"exec": ["true"]})
    assert not check({"exec": ["false"]})
    assert not check({"exec": ["sleep", "30"], "timeout": "200ms"})
    assert not check({"exec": ["/nonexistent/check"]})


@pytest.mark.skipif(os.geteuid() != 0, reason="user is only switched to as root")
def test_an_exec_check_that_cannot_be_spawned_fails_instead_of_raising() -> None:
    """A user gone from the passwd database (KeyError): the check fails, and the health
    task that called it lives on to count it."""
    assert not check({"exec": ["true"]}, user="procpilot-no-such-user")


def test_silent_server_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts connections, never answers
        port = listener.getsockname()[1]
        assert not check({"http": f"http://127.0.0.1:{port}/", "timeout": "200ms"})
