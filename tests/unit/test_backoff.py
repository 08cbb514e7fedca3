from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from procpilot.controller.backoff import Backoff, delay_for, record
from procpilot.controller.config import Restart
from tests.support.fakes import Clock


def policy(**kw: object) -> Restart:
    return Restart.model_validate({"jitter": 0, **kw})


def test_delays_grow_by_factor_up_to_max() -> None:
    p = policy(delay="500ms", factor=2, max_delay="5s")
    assert [delay_for(p, n, 0.5) for n in range(6)] == [0.5, 1, 2, 4, 5, 5]


def test_zero_delay_stays_zero() -> None:
    assert delay_for(policy(delay=0), 10, 0.9) == 0
    assert delay_for(policy(delay=0, max_restarts=10**9), 1100, 0.5) == 0  # past overflow


def test_huge_attempt_does_not_overflow() -> None:
    p = policy(delay=1, factor=1000, max_delay="1h")
    assert delay_for(p, 10_000, 0.5) == 3600


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 0.9), (0.5, 1.0), (0.75, 1.05)])
def test_jitter_spreads_both_ways(rand: float, expected: float) -> None:
    assert delay_for(policy(delay=1, jitter=0.1), 0, rand) == pytest.approx(expected)


def test_jitter_never_exceeds_max_delay() -> None:
    assert delay_for(policy(delay=8, max_delay=10, factor=2, jitter=0.5), 1, 0.999) == 10


@given(
    delay=st.floats(0, 100),
    factor=st.floats(1, 10),
    extra=st.floats(0, 1000),
    jitter=st.floats(0, 1),
    attempt=st.integers(0, 5000),
    rand=st.floats(0, 1, exclude_max=True),
)
def test_delay_is_bounded(
    *,
    delay: float, factor: float, extra: float, jitter: float, attempt: int, rand: float
) -> None:
    p = Restart(delay=delay, factor=factor, max_delay=delay + extra, jitter=jitter)
    assert 0 <= delay_for(p, attempt, rand) <= p.max_delay


def test_crash_loop_backs_off_then_gives_up() -> None:
    p = policy(delay=1, factor=2, max_delay=60, max_restarts=3, window="1m")
    clock, state, delays = Clock(), Backoff(), []
    for _ in range(3):
        verdict = record(state, p, now=clock.advance(0.1), uptime=0.1, rand=0.5)
        assert not verdict.give_up
        delays.append(verdict.delay)
        state = verdict.backoff
        clock.advance(verdict.delay)
    assert delays == [1, 2, 4]
    assert record(state, p, now=clock.advance(0.1), uptime=0.1, rand=0.5).give_up


def test_restarts_older_than_window_do_not_count() -> None:
    p = policy(delay=1, max_restarts=2, window="10s", reset_after="1h")
    clock, state = Clock(), Backoff()
    for _ in range(10):
        verdict = record(state, p, now=clock.advance(6), uptime=5, rand=0.5)
        assert not verdict.give_up  # at most two restarts within any 10 s
        state = verdict.backoff
    assert len(state.restarts) == 2


def test_long_uptime_resets_the_sequence() -> None:
    p = policy(delay=1, factor=3, reset_after="1m", max_restarts=100)
    clock, state = Clock(), Backoff()
    for _ in range(3):
        state = record(state, p, now=clock.advance(1), uptime=1, rand=0.5).backoff
    assert state.attempt == 3
    verdict = record(state, p, now=clock.advance(60), uptime=60, rand=0.5)
    assert verdict.delay == 1
    assert verdict.backoff.attempt == 1


def test_zero_max_restarts_gives_up_at_once() -> None:
    assert record(Backoff(), policy(max_restarts=0), now=0, uptime=5, rand=0).give_up


def test_state_is_immutable_value() -> None:
    state = Backoff()
    record(state, policy(), now=1, uptime=0, rand=0)
    assert state == Backoff()
