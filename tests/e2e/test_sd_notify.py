"""Both services tell a service manager (systemd's Type=notify) when they are ready and when
they begin to stop, over the NOTIFY_SOCKET they were started with; here the test is the
manager. A file path and an abstract address are both used."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controller import Controller
from tests.support.service import start


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd's, named in NOTIFY_SOCKET."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        if request.param == "path":
            address = str(tmp_path / "notify.sock")
            s.bind(address)
        else:
            name = f"procpilot-test-{os.getpid()}-{id(s)}"
            s.bind("\0" + name)
            address = "@" + name
        s.settimeout(30)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        yield s


def told(manager: socket.socket) -> str:
    return manager.recv(4096).decode()


def test_exporter_tells_ready_then_stopping(manager: socket.socket, tmp_path: Path) -> None:
    exporter = start("procpilot.exporter.cli", [], str(tmp_path / "exporter.log"))
    try:
        assert told(manager) == "READY=1"
    finally:
        assert exporter.stop() == 0
    assert told(manager) == "STOPPING=1"


def test_controller_tells_ready_then_stopping(manager: socket.socket, tmp_path: Path) -> None:
    c = Controller(tmp_path, {"web": {"command": "sleep 1000"}}).start()
    try:
        assert told(manager) == "READY=1"
        assert c.status()["web"]["instances"]  # READY=1 came after its programs were added
    finally:
        c.stop()
    assert told(manager) == "STOPPING=1"
