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


_new_used = tuple.__new__  # positional construction, skipping NamedTuple's Python-level __new__


class CpuTracker(Generic[K]):
    """Per-key CPU deltas; call :meth:`observe` for each key seen, then :meth:`sweep`.

    The exporter calls this for every process at every scrape, hence the plain style.
    """

    def __init__(self, grace: int = 2) -> None:
        self.grace = grace
        self._last: dict[K, tuple[float, float, float]] = {}  # user, system, at
        self._seen: dict[K, tuple[float, float, float]] = {}
        self._missed: dict[K, int] = {}  # keys kept although the last passes missed them

    def observe(self, key: K, user: float, system: float, at: float = 0.0) -> Used:
        """Record key's cumulative CPU at time ``at`` and return what it used since last."""
        self._seen[key] = (user, system, at)
        last = self._last.get(key)
        if last is None:
            return _new_used(Used, (user, system, None))
        # Cumulative counters never go back; a smaller value is noise, not a refund.
        du = user - last[0]
        ds = system - last[1]
        return _new_used(
            Used, (du if du > 0 else 0.0, ds if ds > 0 else 0.0, at - last[2])
        )

    def sweep(self) -> None:
        """End an observation pass: keep what was seen, and what was missed within grace."""
        seen, last, missed = self._seen, self._last, self._missed
        kept: dict[K, int] = {}
        if self.grace:
            for key in last.keys() - seen.keys():
                count = missed.get(key, 0) + 1
                if count <= self.grace:
                    seen[key] = last[key]
                    kept[key] = count
        self._last, self._seen, self._missed = seen, {}, kept

    def __len__(self) -> int:
        return len(self._last)
