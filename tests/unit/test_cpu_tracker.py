"""CpuTracker: deltas between observations, new keys, missed keys within grace, forgetting."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from procpilot.core.cpu import CpuTracker, Tracker, Used, grown


def test_new_key_reports_everything_then_deltas() -> None:
    t: CpuTracker[str] = CpuTracker()
    assert t.observe("a", 1.0, 2.0, at=10.0) == Used(1.0, 2.0, None)
    t.sweep()
    assert t.observe("a", 1.5, 2.0, at=12.0) == Used(0.5, 0.0, 2.0)


def test_a_counter_that_goes_back_is_not_a_refund() -> None:
    t: CpuTracker[str] = CpuTracker()
    t.observe("a", 5.0, 5.0)
    t.sweep()
    assert t.observe("a", 4.0, 6.0).user == 0.0


def test_missed_within_grace_is_not_counted_again() -> None:
    t: CpuTracker[str] = CpuTracker(grace=2)
    t.observe("a", 3.0, 0.0, at=1.0)
    t.sweep()
    t.sweep()  # a pass that missed "a"
    assert t.observe("a", 4.0, 0.0, at=3.0) == Used(1.0, 0.0, 2.0)


def test_missed_beyond_grace_is_forgotten() -> None:
    t: CpuTracker[str] = CpuTracker(grace=1)
    t.observe("a", 3.0, 0.0)
    for _ in range(3):
        t.sweep()
    assert len(t) == 0
    assert t.observe("a", 4.0, 0.0).seconds is None


@given(st.lists(st.lists(st.tuples(st.integers(0, 5), st.floats(0, 100)), max_size=6),
                max_size=12))
def test_deltas_of_growing_counters_add_up_to_the_last_value(
    passes: list[list[tuple[int, float]]],
) -> None:
    """Whatever passes miss a key (within grace), its deltas add up to its latest total."""
    t: CpuTracker[int] = CpuTracker(grace=100)
    counted: dict[int, float] = {}
    latest: dict[int, float] = {}
    for observations in passes:
        for key, step in dict(observations).items():
            latest[key] = latest.get(key, 0.0) + step
            counted[key] = counted.get(key, 0.0) + t.observe(key, latest[key], 0.0).user
        t.sweep()
    for key, value in latest.items():
        assert abs(counted[key] - value) < 1e-6 * max(1.0, value)


def test_tracker_returns_the_previous_value_and_keeps_missed_keys() -> None:
    t: Tracker[str, tuple[float, ...]] = Tracker(grace=1)
    assert t.update("a", (1.0, 2.0)) is None
    t.sweep()
    assert t.update("a", (3.0, 2.0)) == (1.0, 2.0)
    assert t.last("a") == (3.0, 2.0)
    t.sweep()
    t.sweep()  # missed once: kept
    assert t.last("a") == (3.0, 2.0)
    t.sweep()
    assert t.last("a") is None


def test_grown_ignores_refunds_and_unread_values() -> None:
    nan = float("nan")
    assert grown((5.0, 1.0, nan, 4.0), (2.0, 3.0, 1.0, nan)) == [3.0, 0.0, 0.0, 0.0]
    assert grown((5.0, nan), None) == [5.0, 0.0]
