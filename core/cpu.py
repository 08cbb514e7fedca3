"""CPU used between observations: the one bookkeeping behind every CPU counter and rate.

The exporter's group counters and top-N rates, the controller's per-instance and
per-program counters and the pool's per-worker rates all ask the same question: how much
CPU did this thing use since I last looked? Counters built from these deltas only ever
grow, whatever comes and goes.

A key names one thing that cannot be confused with another over time: ``(pid, start
ticks)`` for a process (a reused pid has a new start), ``(slot, start)`` for an instance.
A key missed by an observation is remembered for ``grace`` more observations: a process
that one pass did not see (re-parented mid-walk, a transient read error) is then not
counted again from its start when it reappears. Keys beyond that are forgotten, so memory
follows what is alive.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable)


class Used(NamedTuple):
    """CPU seconds since the previous observation of the same key (all of it when new)."""

    user: float
    system: float
    seconds: float | None  # time since the previous observation; None when new

    @property
    def total(self) -> float:
        return self.user + self.system


class CpuTracker(Generic[K]):
    """Per-key CPU deltas; call :meth:`observe` for each key seen, then :meth:`sweep`."""

    def __init__(self, grace: int = 2) -> None:
        self.grace = grace
        self._last: dict[K, tuple[float, float, float, int]] = {}  # user, system, at, missed
        self._seen: dict[K, tuple[float, float, float, int]] = {}

    def observe(self, key: K, user: float, system: float, at: float = 0.0) -> Used:
        """Record key's cumulative CPU at time ``at`` and return what it used since last."""
        self._seen[key] = (user, system, at, 0)
        last = self._last.get(key)
        if last is None:
            return Used(user, system, None)
        # Cumulative counters never go back; a smaller value is noise, not a refund.
        return Used(max(user - last[0], 0.0), max(system - last[1], 0.0), at - last[2])

    def sweep(self) -> None:
        """End an observation pass: keep what was seen, and what was missed within grace."""
        seen = self._seen
        for key, (user, system, at, missed) in self._last.items():
            if missed < self.grace and key not in seen:
                seen[key] = (user, system, at, missed + 1)
        self._last, self._seen = seen, {}

    def __len__(self) -> int:
        return len(self._last)
