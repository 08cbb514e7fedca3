"""Readiness on the fake runtime: ready: notify (READY=1, STATUS=, STOPPING=1, the watchdog),
ready: health, ready_timeout, and what "running" and "failed_start" mean with each."""

from __future__ import annotations

import pytest

from procpilot.controller.hooks import Event
from procpilot.controller.program import wait_all
from procpilot.controller.states import State
from tests.component.test_program import on_program, program
from tests.support.fakes import FakeRuntime, sleep


def test_notify_program_is_starting_until_ready_1_however_long_it_takes() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, ready="notify")
        started = p.start()
        await sleep(30)  # far past start_seconds
        inst = p.instances[0]
        assert (inst.state, inst.ready) == (State.STARTING, False)
        child = rt.current("web")
        child.notify("STATUS=loading caches")
        assert p.view().instances[0].status_text == "loading caches"
        child.notify("READY=1\nSTATUS=serving")
        assert await wait_all(started) == [State.RUNNING]
        assert inst.ready
        assert p.view().instances[0].status().get("status_text") == "serving"

    on_program(test)


def test_an_exit_before_ready_1_is_a_failed_start_even_after_start_seconds() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, ready="notify")
        p.start()
        await sleep(10)
        rt.current("web").exit(1)
        await sleep(0)
        assert p.restarts == {"failed_start": 1}
        await sleep(1.5)  # the backoff
        rt.current("web").notify("READY=1")  # the next process gets ready
        await sleep(1)
        rt.current("web").exit(1)
        await sleep(0)
        assert p.restarts == {"failed_start": 1, "exit": 1}

    on_program(test)


def test_not_ready_within_ready_timeout_restarts_with_that_reason() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, ready="notify", ready_timeout="20s")
        p.start()
        await sleep(19.9)
        assert rt.current("web").signals == []
        await sleep(0.2)
        assert p.instances[0].state == State.BACKOFF
        assert p.restarts == {"ready_timeout": 1}
        last = p.instances[0].last_exit
        assert last is not None and last.reason == "ready_timeout"

    on_program(test)


def test_stopping_1_makes_an_instance_not_ready_while_it_still_runs() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, ready="notify")
        p.start()
        await sleep(0.1)
        rt.current("web").notify("READY=1")
        assert p.instances[0].ready
        rt.current("web").notify("STOPPING=1")
        inst = p.instances[0]
        assert (inst.state, inst.ready) == (State.RUNNING, False)

    on_program(test)


def test_watchdog_restarts_an_instance_that_stops_pinging() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, ready="notify", watchdog="10s")
        p.start()
        await sleep(60)  # not armed before ready: ready_timeout (90s) governs
        child = rt.current("web")
        assert child.spec.env is not None and child.spec.env["WATCHDOG_USEC"] == "10000000"
        assert child.spec.pid_env == ("WATCHDOG_PID",)
        child.notify("READY=1")
        for _ in range(5):
            await sleep(9)
            child.notify("WATCHDOG=1")
        assert p.restarts == {}
        await sleep(10.1)
        assert p.restarts == {"watchdog": 1}
        await sleep(1.5)  # the backoff
        rt.current("web").notify("READY=1")
        rt.current("web").notify("WATCHDOG=trigger")  # the program asks for it
        await sleep(0.1)
        assert p.restarts == {"watchdog": 2}

    on_program(test)


def test_ready_health_is_the_first_passing_check_and_failures_before_it_do_not_count() -> None:
    async def test(rt: FakeRuntime) -> None:
        answers = iter([False] * 6 + [True, False, False, False])
        rt.health = lambda program: next(answers, True)
        p = program(rt, ready="health", health={"tcp": "127.0.0.1:1", "interval": "1s",
                                                "failure_threshold": 3})
        started = p.start()
        await sleep(5.5)
        assert (p.instances[0].state, p.restarts) == (State.STARTING, {})  # 6 fails: no restart
        assert await wait_all(started) == [State.RUNNING]
        await sleep(3.5)
        assert p.restarts == {"health": 1}  # counted from ready on

    on_program(test)


def test_a_notify_program_gets_a_notify_socket_and_others_do_not() -> None:
    async def test(rt: FakeRuntime) -> None:
        for ready, told in (("notify", True), ("start_seconds", False)):
            p = program(rt, ready=ready)
            p.start()
            await sleep(0.1)
            assert (rt.children[-1].notify_to is not None) == told
            await wait_all(p.stop())

    on_program(test)


@pytest.mark.parametrize(("ready", "seconds"), [("start_seconds", 1.0), ("notify", None)])
def test_events_carry_the_story_and_the_last_lines(ready: str, seconds: float | None) -> None:
    async def test(rt: FakeRuntime) -> None:
        events: list[Event] = []
        p = program(rt, on_event=events.append, ready=ready)
        p.start()
        await sleep(0.1)
        child = rt.current("web")
        if seconds is None:
            child.notify("READY=1")
        await sleep(seconds or 0)
        child.say("".join(f"line {n}\n" for n in range(15)))
        child.exit(3)
        await sleep(0)
        assert [(e.event, e.state, e.reason) for e in events] == [
            ("started", "starting", None), ("ready", "running", None),
            ("exited", "backoff", "exit"), ("backoff", "backoff", "exit")]
        exited = events[2]
        assert (exited.instance, exited.pid, exited.exit_code) == ("web:0", child.pid, 3)
        assert exited.log_tail == tuple(f"line {n}" for n in range(5, 15))

    on_program(test)
