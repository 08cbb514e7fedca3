"""Readiness with real processes: sd_notify over the controller's socket gating a dependent,
and only an instance's own processes may speak for it."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.support.controller import running
from tests.support.service import wait_for

pytestmark = pytest.mark.timeout(120)
WORKER = str(Path(__file__).parents[1] / "support" / "sd_worker.py")


def test_a_notify_ready_program_gates_its_dependent(tmp_path: Path) -> None:
    marker, seen = tmp_path / "db-ready", tmp_path / "web-saw"
    programs = {
        "db": {"command": [sys.executable, WORKER, "ready-after", "1", str(marker)],
               "ready": "notify"},
        # What web finds when it starts: db's marker is written just before READY=1.
        "web": {"command": ["sh", "-c", f"if [ -e {marker} ]; then echo after; else echo "
                            f"before; fi > {seen}; exec sleep 1000"],
                "depends_on": ["db"], "start_seconds": "100ms"},
    }
    with running(tmp_path, programs) as c:
        c.wait_state("web", "running")
        assert seen.read_text() == "after\n"
        db = c.instance("db")
        assert db is not None and (db["state"], db["ready"], db["status_text"]) == (
            "running", True, "warmed up")
        assert c.metric("procpilot_program_ready_instances", program="db") == 1


def _notify_socket(pid: int) -> str:
    """The instance's NOTIFY_SOCKET, once its exec is done (before it, the forked child
    still shows the controller's environment)."""
    def address() -> str | None:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        found = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"NOTIFY_SOCKET=")]
        return "\0" + found[0].decode()[1:] if found else None

    found: str = wait_for(address, what="NOTIFY_SOCKET in the instance's environment")
    return found


def test_only_an_instances_own_processes_can_notify_for_it(tmp_path: Path) -> None:
    ready_after = f"{sys.executable} {WORKER} ready-after 0 {tmp_path / 'marker'}"
    programs = {
        # READY=1 comes from a child of the shell: same process group (and cell).
        "wrapped": {"command": ["sh", "-c", f"{ready_after}; exit 1"], "ready": "notify"},
        # From a child in a session of its own: only its cell says whose it is.
        "detached": {"command": ["sh", "-c", f"setsid {ready_after}; exit 1"],
                     "ready": "notify", "stop": {"timeout": "500ms"}},
        "quiet": {"command": ["sleep", "1000"], "ready": "notify"},
    }
    with running(tmp_path, programs) as c:
        c.wait_state("wrapped", "running")
        cells = c.metric("procpilot_controller_isolation_info", backend="none") is None
        c.wait_state("detached", "running" if cells else "starting")
        pid = c.wait_state("quiet", "starting")["pid"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stranger:  # this test
            stranger.sendto(b"READY=1", _notify_socket(pid))
        rejected = 0 if cells else 1  # without cells, the detached one's READY=1 too
        wait_for(lambda: c.metric("procpilot_controller_notifications_rejected_total")
                 == rejected + 1, what="the stranger's READY=1 dropped")
        quiet = c.instance("quiet")
        assert quiet is not None and (quiet["state"], quiet["ready"]) == ("starting", False)


# Joins the process group named in the file argv[1] (if the kernel lets it), then says
# READY=1 at the address in that file, and writes how the join went to argv[2].
IMPOSTOR = """
import os, socket, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
pid, address = open(sys.argv[1]).read().split(" ", 1)
try:
    os.setpgid(0, int(pid))
    joined = "joined"
except OSError as e:
    joined = e.strerror
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.sendto(b"READY=1", "\\0" + address[1:])
open(sys.argv[2], "w").write(joined)
time.sleep(1000)
"""


def test_another_program_cannot_join_an_instances_group_to_speak_for_it(
        tmp_path: Path) -> None:
    target, outcome = tmp_path / "target", tmp_path / "outcome"
    programs = {
        "quiet": {"command": ["sleep", "1000"], "ready": "notify"},
        "impostor": {"command": [sys.executable, "-c", IMPOSTOR, str(target), str(outcome)],
                     "start_seconds": "100ms"},
    }
    with running(tmp_path, programs) as c:
        pid = c.wait_state("quiet", "starting")["pid"]
        target.write_text(f"{pid} {_notify_socket(pid)}")
        wait_for(outcome.exists, what="the impostor's READY=1")
        assert outcome.read_text() == "Operation not permitted"  # another session's group
        wait_for(lambda: c.metric("procpilot_controller_notifications_rejected_total") == 1,
                 what="the impostor's READY=1 dropped")
        quiet = c.instance("quiet")
        assert quiet is not None and (quiet["state"], quiet["ready"]) == ("starting", False)
