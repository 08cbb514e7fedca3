from __future__ import annotations

import signal

import pytest

from procpilot.controller.backoff import Backoff
from procpilot.controller.config import ProgramConfig
from procpilot.controller.states import (
    AGGREGATE_ORDER,
    TRANSITIONS,
    Cause,
    Exit,
    ExitStatus,
    Outcome,
    State,
    aggregate,
    check,
    on_exit,
)
from tests.support.fakes import Clock


def program(**restart: object) -> ProgramConfig:
    return ProgramConfig.model_validate(
        {"command": ["x"], "start_seconds": "1s", "restart": {"jitter": 0, **restart}}
    )


def exit_after(
    clock: Clock, uptime: float, code: int | None = 1, sig: int | None = None
) -> Exit:
    # program() is ready after start_seconds: 1s
    return Exit(ExitStatus(code, sig), uptime=uptime, time=clock.advance(uptime),
                ready=uptime >= 1)


def decide(p: ProgramConfig, e: Exit, cause: Cause | None = None) -> Outcome:
    return on_exit(p, e, cause, Backoff(), rand=0.5)


@pytest.mark.parametrize(
    ("uptime", "code", "sig", "reason"),
    [
        (0.2, 1, None, "failed_start"),
        (0.2, 0, None, "failed_start"),
        (0.0, 127, None, "failed_start"),
        (5.0, 1, None, "exit"),
        (5.0, 0, None, "exit"),
        (5.0, None, signal.SIGSEGV, "signal"),
    ],
)
def test_always_restarts_with_reason(
    uptime: float, code: int | None, sig: int | None, reason: str
) -> None:
    out = decide(program(delay="2s"), exit_after(Clock(), uptime, code, sig))
    assert (out.state, out.reason, out.delay, out.restarts) == (State.BACKOFF, reason, 2.0, True)
    assert out.backoff.attempt == 1


@pytest.mark.parametrize(
    ("code", "sig", "expected"),
    [
        (0, None, State.EXITED),
        (3, None, State.EXITED),  # listed in exit_codes
        (1, None, State.BACKOFF),
        (None, signal.SIGTERM, State.BACKOFF),
    ],
)
def test_on_failure_respects_exit_codes(code: int | None, sig: int | None, expected: State) -> None:
    p = program(policy="on-failure", exit_codes=[0, 3])
    out = decide(p, exit_after(Clock(), 9, code, sig))
    assert out.state == expected


def test_on_failure_quick_clean_exit_is_done_not_failed() -> None:
    # A one-shot job that succeeds within start_seconds must not be restarted in a loop.
    out = decide(program(policy="on-failure"), exit_after(Clock(), 0.1, 0))
    assert (out.state, out.reason, out.restarts) == (State.EXITED, "failed_start", False)


def test_never_policy_exits() -> None:
    out = decide(program(policy="never"), exit_after(Clock(), 9, None, signal.SIGKILL))
    assert (out.state, out.reason) == (State.EXITED, "signal")


def test_stop_request_ends_stopped_whatever_the_status() -> None:
    out = decide(program(), exit_after(Clock(), 9, None, signal.SIGKILL), "stop")
    assert (out.state, out.reason, out.restarts) == (State.STOPPED, "stopped", False)


def test_manual_restart_is_immediate_and_leaves_backoff_alone() -> None:
    state = Backoff(attempt=4, restarts=(1.0, 2.0))
    out = on_exit(program(), exit_after(Clock(), 9, 0), "manual", state, rand=0.5)
    assert (out.state, out.reason, out.delay, out.backoff) == (State.STARTING, "manual", 0, state)
    assert out.restarts


@pytest.mark.parametrize("cause", ["memory_limit", "health", "oom_kill"])
def test_controller_causes_restart_even_on_failure_with_clean_code(cause: Cause) -> None:
    out = decide(program(policy="on-failure"), exit_after(Clock(), 9, 0), cause)
    assert (out.state, out.reason) == (State.BACKOFF, cause)


def test_crash_loop_reaches_fatal_with_fake_clock() -> None:
    p = program(delay="1s", factor=2, max_restarts=3, window="1m")
    clock, state, seen = Clock(), Backoff(), []
    while True:
        out = on_exit(p, exit_after(clock, 0.3), None, state, rand=0.5)
        seen.append((out.state, out.delay))
        if out.state is State.FATAL:
            break
        state = out.backoff
        clock.advance(out.delay)
    assert seen == [
        (State.BACKOFF, 1.0),
        (State.BACKOFF, 2.0),
        (State.BACKOFF, 4.0),
        (State.FATAL, 0.0),
    ]
    assert not out.restarts


def test_exit_code_value() -> None:
    assert ExitStatus(3, None).shell_code == 3
    assert ExitStatus(None, 9).shell_code == 137


def test_on_exit_results_are_allowed_moves() -> None:
    for end in (State.STOPPED, State.STARTING, State.BACKOFF, State.EXITED, State.FATAL):
        check(State.STOPPING, end)
    check(State.RUNNING, State.BACKOFF)
    with pytest.raises(ValueError, match="illegal state transition stopped -> running"):
        check(State.STOPPED, State.RUNNING)
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], State.STOPPED),
        ([State.RUNNING, State.RUNNING], State.RUNNING),
        ([State.RUNNING, State.BACKOFF], State.BACKOFF),
        ([State.RUNNING, State.FATAL, State.BACKOFF], State.FATAL),
        ([State.RUNNING, State.STARTING], State.STARTING),
        ([State.RUNNING, State.STOPPING], State.STOPPING),
        ([State.RUNNING, State.EXITED], State.RUNNING),
        ([State.EXITED, State.STOPPED], State.EXITED),
    ],
)
def test_aggregate(states: list[State], expected: State) -> None:
    assert aggregate(states) == expected


def test_aggregate_order_covers_every_state() -> None:
    assert sorted(AGGREGATE_ORDER) == sorted(State)
