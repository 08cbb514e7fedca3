"""Removing a killed cell retries rmdir: a cgroup can say EBUSY for a moment after its last
process left (seen as empty cells left behind after a shutdown)."""

from __future__ import annotations

from typing import cast

from procpilot.controller.isolation import Cell, kill_and_remove


class BusyFor:
    """A cell that is empty at once but refuses removal the first ``refusals`` times."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.kills = 0

    def kill(self) -> bool:
        self.kills += 1
        return True

    def remove(self) -> bool:
        self.refusals -= 1
        return self.refusals < 0


def test_a_cell_busy_for_a_moment_is_removed_on_a_later_try() -> None:
    cell = BusyFor(refusals=3)
    assert kill_and_remove(cast(Cell, cell), timeout=5.0, step=0.0)
    assert cell.kills == 4


def test_a_cell_that_stays_busy_is_reported_after_the_timeout() -> None:
    assert not kill_and_remove(cast(Cell, BusyFor(refusals=10**9)), timeout=0.05, step=0.01)
