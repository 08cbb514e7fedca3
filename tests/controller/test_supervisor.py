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


def test_crash_loop_backs_off_then_goes_fatal_and_start_revives(tmp_path: Path) -> None:
    programs = {"crash": {"command": "sh -c 'exit 3'", **FAST,
                          "restart": {"delay": "50ms", "max_restarts": 3, "window": "1m"}}}
    with running(tmp_path, programs) as c:
        inst = c.wait_state("crash", "fatal")
        assert inst["restarts"] == 3
        assert inst["last_exit"]["code"] == 3
        assert inst["last_exit"]["reason"] == "failed_start"
        assert c.metric("procpilot_program_restarts_total", program="crash",
                        reason="failed_start") == 3
        assert c.metric("procpilot_program_state", program="crash", state="fatal") == 1
        assert c.metric("procpilot_program_exit_code", program="crash") == 3
        assert "fatal until started again" in c.stderr()
        c.ok("start", target="crash")
        wait_for(lambda: c.metric("procpilot_program_restarts_total", program="crash",
                                  reason="failed_start") == 6, what="a second crash loop")
        c.wait_state("crash", "fatal")


def test_crash_after_start_seconds_is_a_crash(tmp_path: Path) -> None:
    programs = {"late": {"command": "sh -c 'sleep 0.3; exit 4'", "start_seconds": "100ms",
                         "restart": {"delay": "10ms"}}}
    with running(tmp_path, programs) as c:
        wait_for(lambda: (c.metric("procpilot_program_restarts_total", program="late",
                                   reason="exit") or 0) >= 2, what="crashes")
        inst = c.instance("late")
        assert inst is not None and inst["last_exit"]["reason"] == "exit"


def test_command_that_cannot_start(tmp_path: Path) -> None:
    programs = {"missing": {"command": ["/nonexistent/bin"], **FAST,
                            "restart": {"delay": 0, "max_restarts": 2}}}
    with running(tmp_path, programs) as c:
        inst = c.wait_state("missing", "fatal")
        assert inst["last_exit"] == {**inst["last_exit"], "code": 127, "reason": "failed_start"}
        assert "cannot start instance" in c.stderr()


def test_policy_never_and_on_failure(tmp_path: Path) -> None:
    programs = {
        "once": {"command": "true", **FAST, "restart": {"policy": "never"}},
        "clean": {"command": "sh -c 'sleep 0.3; exit 0'", "start_seconds": "100ms",
                  "restart": {"policy": "on-failure"}},
    }
    with running(tmp_path, programs) as c:
        c.wait_state("once", "exited")
        c.wait_state("clean", "exited")
        assert c.instance("once")["restarts"] == 0  # type: ignore[index]


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


def test_memory_limit_restarts_the_instance(tmp_path: Path) -> None:
    hog = "b = bytearray(64 * 1024 * 1024); import time; time.sleep(1000)"
    programs = {"hog": {"command": [sys.executable, "-c", hog], **FAST,
                        "limits": {"memory": "32MiB", "check_interval": "200ms"},
                        "restart": {"delay": "100ms"}}}
    with running(tmp_path, programs) as c:
        wait_for(lambda: c.metric("procpilot_program_restarts_total", program="hog",
                                  reason="memory_limit"), what="a memory_limit restart")
        inst = c.instance("hog")
        assert inst is not None and inst["last_exit"]["reason"] == "memory_limit"
        assert c.metric("procpilot_program_memory_limit_bytes", program="hog") == 32 * 1024**2


def test_priority_orders_start_and_reverse_stop(tmp_path: Path) -> None:
    order = tmp_path / "order"

    def prog(name: str, priority: int) -> dict[str, object]:
        script = (f"echo start-{name} >> {order}; trap 'echo stop-{name} >> {order}; exit 0' "
                  "TERM; while :; do sleep 0.05; done")
        return {"command": ["sh", "-c", script], "priority": priority, **FAST}

    programs = {"late": prog("late", 20), "early": prog("early", 10), "mid": prog("mid", 15)}
    with running(tmp_path, programs) as c:
        for name in programs:
            c.wait_state(name, "running")
        c.signal(signal.SIGTERM)
        assert c.wait_exit() == 0
    assert order.read_text().split() == [
        "start-early", "start-mid", "start-late", "stop-late", "stop-mid", "stop-early"]


def test_sigterm_while_in_backoff_exits_cleanly(tmp_path: Path) -> None:
    programs = {"slow": {"command": "false", **FAST, "restart": {"delay": "1h", "max_delay": "1h"}},
                "ok": {"command": "sleep 1000", **FAST}}
    with running(tmp_path, programs) as c:
        c.wait_state("slow", "backoff")
        assert (c.metric("procpilot_program_backoff_seconds", program="slow") or 0) > 60
        c.signal(signal.SIGTERM)
        assert c.wait_exit() == 0
        assert "controller stopped" in c.stderr()


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


def test_health_check_failure_restarts(tmp_path: Path) -> None:
    programs = {"sick": {"command": "sleep 1000", **FAST, "restart": {"delay": "100ms"},
                         "health": {"tcp": "127.0.0.1:1", "interval": "100ms",
                                    "timeout": "1s", "failure_threshold": 2}},
                "well": {"command": "sleep 1000", **FAST,
                         "health": {"exec": ["true"], "interval": "100ms"}}}
    with running(tmp_path, programs) as c:
        wait_for(lambda: c.metric("procpilot_program_restarts_total", program="sick",
                                  reason="health"), what="a health restart")
        assert c.instance("well")["restarts"] == 0  # type: ignore[index]


def test_stop_start_restart_and_scale_by_control(tmp_path: Path) -> None:
    programs = {"pool": {"command": "sleep 1000", "instances": 2, **FAST}}
    with running(tmp_path, programs) as c:
        c.wait_state("pool", "running", 1)
        assert c.ok("stop", target="pool:1") == "pool:1 stopped"
        assert c.ok("start", target="pool:1") == "pool:1 running"
        before = c.instance("pool", 0)
        assert c.ok("restart", target="pool:0") == "pool:0 running"
        after = c.instance("pool", 0)
        assert before is not None and after is not None and before["pid"] != after["pid"]
        assert c.metric("procpilot_program_restarts_total", program="pool", reason="manual") == 1
        assert c.ok("scale", target="pool", count=4) == "pool: 4 desired, 4 running"
        assert c.metric("procpilot_program_desired_instances", program="pool") == 4
        assert c.ok("scale", target="pool", count=1).startswith("pool: 1 desired")
        assert len(c.status()["pool"]["instances"]) == 1
        refused = c.ctl("stop", target="nope")
        assert refused == {"ok": False, "error": "no such program: nope"}
        assert not c.ctl("logs", target="pool")["ok"]


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


def test_reload_that_removes_and_restores_a_program(tmp_path: Path) -> None:
    programs = {"back": {"command": "sleep 1000", **FAST}}
    with running(tmp_path, programs) as c:
        c.wait_state("back", "running")
        c.write_config({})
        c.ok("reload")
        c.write_config(programs)
        c.ok("reload")
        c.wait_state("back", "running")


def test_autostart_false_waits_for_start_and_restart_all(tmp_path: Path) -> None:
    programs = {"manual": {"command": "sleep 1000", "autostart": False, **FAST},
                "auto": {"command": "sleep 1000", **FAST}}
    with running(tmp_path, programs) as c:
        c.wait_state("auto", "running")
        assert c.instance("manual")["state"] == "stopped"  # type: ignore[index]
        assert c.ok("start", target="manual") == "manual:0 running"
        result = c.ok("restart", target="all")
        assert "auto:0 running" in result and "manual:0 running" in result


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
@pytest.mark.parametrize("user", ["nobody", 54321])  # 54321: a bare uid with no passwd entry
def test_programs_run_as_the_configured_user(tmp_path: Path, user: str | int) -> None:
    expected = pwd.getpwnam(user).pw_uid if isinstance(user, str) else user
    with running(tmp_path, {"drop": {"command": ["sleep", "1000"], "user": user}}) as c:
        pid = c.wait_state("drop", "running")["pid"]
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert {int(u) for u in uids} == {expected}


def test_unusable_log_directory_fails_the_start_and_later_groups_still_start(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    programs = {
        "nolog": {"command": ["sleep", "1000"], "priority": 10,
                  "logs": {"directory": str(blocker / "logs")},
                  "restart": {"max_restarts": 0}},
        "after": {"command": ["sleep", "1000"], "priority": 20},
    }
    with running(tmp_path, programs) as c:
        c.wait_state("nolog", "fatal")
        c.wait_state("after", "running")
        # Only "after" runs: the failed start left no child behind.
        assert [pid for pid, _ in children_of(c.pid)] == [c.instance("after")["pid"]]  # type: ignore[index]
