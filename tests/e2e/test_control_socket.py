"""The control socket: permissions, peer uid check, malformed requests."""

from __future__ import annotations

import json
import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from procpilot.controller.client import Unreachable
from tests.support.controller import Controller, request, running

pytestmark = pytest.mark.timeout(120)

NOBODY = 65534
STRANGER = 65533  # a uid no config lists
PROGRAMS = {"idle": {"command": "sleep 1000", "start_seconds": "200ms"}}


def ask_as(uid: int, path: Path) -> dict[str, object]:
    """Send a status request from a forked child that has switched to uid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(r)
            os.setgid(uid)
            os.setuid(uid)
            try:
                answer = request(path, {"cmd": "status"}, timeout=30)
            except Unreachable as e:
                answer = {"unreachable": str(e)}
            os.write(w, json.dumps(answer).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    result: dict[str, object] = json.loads(data)
    return result


def test_socket_is_private(tmp_path: Path) -> None:
    with running(tmp_path, PROGRAMS) as c:
        assert stat.S_IMODE(c.socket.stat().st_mode) == 0o600
        assert c.ok("status")["programs"][0]["program"] == "idle"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
def test_other_uid_is_refused_unless_allowed(tmp_path: Path) -> None:
    # The other uid must reach the socket to get as far as the uid check: a directory it can
    # traverse (pytest's tmp_path is private), and the socket's mode opened up after start.
    with tempfile.TemporaryDirectory(prefix="procpilot-ctl-") as public:
        os.chmod(public, 0o755)
        for top, result in [({}, False), ({"control": {"allowed_uids": [NOBODY]}}, True)]:
            c = Controller(tmp_path, PROGRAMS, **top)
            c.socket = Path(public) / "ctl.sock"
            c.start()
            try:
                c.socket.chmod(0o666)
                answer = ask_as(NOBODY, c.socket)
                assert answer.get("ok") is result, answer
                if not result:
                    assert answer["error"] == f"uid {NOBODY} is not allowed on this control socket"
                    assert "control request refused" in c.stderr()
            finally:
                c.stop()


def acls_work(directory: str) -> bool:
    probe = Path(directory) / "acl-probe"
    probe.touch()
    try:
        os.setxattr(probe, "system.posix_acl_access", b"\x02\x00\x00\x00")
    except OSError:
        return False
    finally:
        probe.unlink()
    return True


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
def test_allowed_uids_can_connect_and_no_one_else(tmp_path: Path) -> None:
    """control.allowed_uids opens the socket file to those uids (an ACL), no wider."""
    with tempfile.TemporaryDirectory(prefix="procpilot-ctl-") as public:
        os.chmod(public, 0o755)
        if not acls_work(public):
            pytest.skip(f"the file system of {public} has no POSIX ACLs")
        c = Controller(tmp_path, PROGRAMS, control={"allowed_uids": [NOBODY]})
        c.socket = Path(public) / "ctl.sock"
        c.start()
        try:
            assert ask_as(NOBODY, c.socket).get("ok") is True
            assert ask_as(STRANGER, c.socket) == {"unreachable": f"{c.socket}: permission denied"}
            assert stat.S_IMODE(c.socket.stat().st_mode) & 0o007 == 0
            c.write_config(PROGRAMS)  # a reload without the uid closes its door again
            assert c.ctl("reload")["ok"]
            assert ask_as(NOBODY, c.socket) == {"unreachable": f"{c.socket}: permission denied"}
            assert stat.S_IMODE(c.socket.stat().st_mode) == 0o600
        finally:
            c.stop()


def test_malformed_requests_get_errors(tmp_path: Path) -> None:
    with running(tmp_path, PROGRAMS) as c:
        for line, error in [(b"not json\n", "request is not JSON"),
                            (b"[1]\n", 'request must be an object with a "cmd" string'),
                            (b'{"cmd": "dance"}\n', "unknown command 'dance'")]:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(str(c.socket))
                s.sendall(line)
                answer = json.loads(s.makefile("rb").readline())
            assert answer["ok"] is False and answer["error"].startswith(error)
        assert c.ctl("start", target="idle:x")["ok"] is False
        assert c.ctl("scale", target="idle", count="auto")["ok"] is False


def test_stale_socket_is_replaced_and_live_one_refused(tmp_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "ctl.sock"))
    stale.close()  # the file stays, nobody listens: what a killed controller leaves
    with running(tmp_path, PROGRAMS) as c:
        before = c.wait_state("idle", "running")
        second = Controller(tmp_path / "..", PROGRAMS)
        second.socket = c.socket
        second.stderr_path = tmp_path / "second.stderr"
        second.config_path = tmp_path / "controller.yaml"
        second.start(wait=False)
        assert second.wait_exit() == 1
        assert "another controller is listening" in second.stderr()
        # The cells are the live controller's: the second one leaves them alone.
        assert "earlier controller" not in second.stderr()
        after = c.instance("idle")
        assert after is not None and after["pid"] == before["pid"]
        assert after["state"] == "running" and after["restarts"] == 0
