"""End-to-end supervision with a real controller subprocess and real children."""

from __future__ import annotations

import os
import pwd
import signal
import sys
from pathlib import Path

import pytest

from tests.support.controller import alive, children_of, running
from tests.support.service import wait_for

pytestmark = pytest.mark.timeout(120)

FAST = {"start_seconds": "200ms"}




def test_command_that_cannot_start(tmp_path: Path) -> None:
    programs = {"missing": {"command": ["/nonexistent/bin"], **FAST,
                            "restart": {"delay": 0, "max_restarts": 2}}}
    with running(tmp_path, programs) as c:
        inst = c.wait_state("missing", "fatal")
        assert inst["last_exit"] == {**inst["last_exit"], "code": 127, "reason": "failed_start"}
        assert "cannot start instance" in c.stderr()



def test_child_ignoring_sigterm_is_killed_after_timeout(tmp_path: Path) -> None:
    programs = {"stubborn": {"command": ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"],
                             **FAST, "stop": {"timeout": "500ms"}}}
    with running(tmp_path, programs) as c:
        c.wait_state("stubborn", "running")
        result = c.ok("stop", target="stubborn")
        assert result == "stubborn:0 stopped"
        inst = c.instance("stubborn")
        assert inst is not None and inst["last_exit"]["signal"] == signal.SIGKILL
        assert "did not stop in time" in c.stderr()


def test_double_forked_grandchild_is_stopped_and_reaped(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    # The grandchild outlives its parent and is re-parented to the controller (subreaper).
    script = f"(sleep 1000 & echo $! > {pidfile}) ; sleep 1000"
    programs = {"forker": {"command": ["sh", "-c", script], **FAST,
                           "stop": {"timeout": "5s"}}}
    with running(tmp_path, programs) as c:
        c.wait_state("forker", "running")
        grandchild = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
        wait_for(lambda: any(pid == grandchild for pid, _ in children_of(c.pid)),
                 what="grandchild re-parented to the controller")
        c.ok("stop", target="forker")
        wait_for(lambda: not alive(grandchild), what="grandchild gone")
        wait_for(lambda: (c.metric("procpilot_controller_reaped_processes_total") or 0) >= 1,
                 what="orphan reaped")
        wait_for(lambda: children_of(c.pid) == [], what="no children (no zombies) left")


def test_leftovers_are_killed_when_the_main_process_exits(tmp_path: Path) -> None:
    pidfile = tmp_path / "left.pid"
    script = f"sleep 1000 & echo $! > {pidfile}; sleep 0.5; exit 1"
    programs = {"leaky": {"command": ["sh", "-c", script], "start_seconds": "100ms",
                          "restart": {"policy": "never"}}}
    with running(tmp_path, programs) as c:
        leftover = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip()))
        c.wait_state("leaky", "exited")
        wait_for(lambda: not alive(leftover), what="leftover of the group killed")


def test_flooding_child_keeps_every_line_and_controller_responsive(tmp_path: Path) -> None:
    n = 300_000
    logs = tmp_path / "logs"
    programs = {
        "flood": {"command": ["sh", "-c", f"seq 1 {n}; exec sleep 1000"], **FAST,
                  "logs": {"directory": str(logs), "max_size": "256KiB", "backups": 100}},
        "quiet": {"command": "sleep 1000", **FAST},
    }
    with running(tmp_path, programs) as c:
        c.wait_state("quiet", "running")  # answers while the flood is read

        def lines() -> list[bytes]:
            assert c.ok("status")  # the controller answers while it reads the flood
            rotated = sorted(logs.glob("flood-0.log.*"), key=lambda p: -int(p.suffix[1:]))
            data = b"".join(p.read_bytes() for p in [*rotated, logs / "flood-0.log"])
            return data.split(b"\n")

        wait_for(lambda: lines()[-2:] == [str(n).encode(), b""], what="all lines written")
        assert lines()[:-1] == [str(i).encode() for i in range(1, n + 1)]
        assert len(list(logs.glob("flood-0.log.*"))) > 3
        assert c.ok("logs", target="flood") == {"files": [str(logs / "flood-0.log")]}


def test_without_cgroups_memory_over_the_limit_is_polled_and_restarted(tmp_path: Path) -> None:
    hog = "b = bytearray(64 * 1024 * 1024); import time; time.sleep(1000)"
    programs = {"hog": {"command": [sys.executable, "-c", hog], **FAST,
                        "limits": {"memory": "32MiB", "check_interval": "200ms"},
                        "restart": {"delay": "100ms"}}}
    with running(tmp_path, programs, isolation={"backend": "none"}) as c:
        wait_for(lambda: c.metric("procpilot_program_restarts_total", program="hog",
                                  reason="memory_limit"), what="a memory_limit restart")
        inst = c.instance("hog")
        assert inst is not None and inst["last_exit"]["reason"] == "memory_limit"
        assert c.metric("procpilot_program_memory_limit_bytes", program="hog") == 32 * 1024**2




def test_sigkill_of_the_controller_takes_its_children(tmp_path: Path) -> None:
    programs = {"a": {"command": "sleep 1000", "instances": 3, **FAST},
                "b": {"command": ["sh", "-c", "trap '' TERM; sleep 1000"], **FAST}}
    with running(tmp_path, programs) as c:
        for i in range(3):
            c.wait_state("a", "running", i)
        c.wait_state("b", "running")
        pids = [pid for pid, _ in children_of(c.pid)]
        assert len(pids) == 4
        c.signal(signal.SIGKILL)
        c.wait_exit()
        wait_for(lambda: not any(alive(p) for p in pids), what="children gone")




def test_stop_lets_the_rest_of_the_group_finish_before_sigkill(tmp_path: Path) -> None:
    done = tmp_path / "done"
    # The outer shell dies on SIGTERM at once; its child traps it and takes a moment.
    inner = f"trap 'sleep 0.5; echo clean > {done}; exit 0' TERM; while :; do sleep 0.05; done"
    programs = {"wrapper": {"command": ["sh", "-c", f"sh -c \"{inner}\" & wait"], **FAST,
                            "stop": {"timeout": "20s"}}}
    with running(tmp_path, programs) as c:
        c.wait_state("wrapper", "running")
        c.ok("stop", target="wrapper")
        wait_for(done.exists, what="the inner process's clean exit")
        assert done.read_text() == "clean\n"
        wait_for(lambda: children_of(c.pid) == [], what="group gone and reaped")




@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
@pytest.mark.parametrize("user", ["nobody", 54321])  # 54321: a bare uid with no passwd entry
def test_programs_run_as_the_configured_user(tmp_path: Path, user: str | int) -> None:
    expected = pwd.getpwnam(user).pw_uid if isinstance(user, str) else user
    with running(tmp_path, {"drop": {"command": ["sleep", "1000"], "user": user}}) as c:
        pid = c.wait_state("drop", "running")["pid"]
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert {int(u) for u in uids} == {expected}


def test_sigterm_while_thousands_start_is_handled_at_once(tmp_path: Path) -> None:
    programs = {"many": {"command": "sleep 1000", "instances": 2000, **FAST}}
    with running(tmp_path, programs, isolation={"backend": "none"}) as c:
        wait_for(lambda: len(children_of(c.pid)) >= 50, what="the first instances")
        c.signal(signal.SIGTERM)
        assert c.wait_exit() == 0
        assert "controller stopped" in c.stderr()
        assert c.stderr().count("instance started") < 2000  # it did not finish starting first
