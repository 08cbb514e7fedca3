"""What grew between observations: the one bookkeeping behind every counter built from
cumulative per-process values (CPU time, page faults, context switches, I/O bytes).

The exporter's group counters and top-N rates, the controller's per-instance and
per-program counters and the pool's per-worker rates all ask the same question: how much
did this thing use since I last looked? Counters built from these deltas only ever grow,
whatever comes and goes.

A key names one thing that cannot be confused with another over time: ``(pid, start
ticks)`` for a process (a reused pid has a new start), ``(slot, start)`` for an instance.
A key missed by an observation is remembered for ``grace`` more observations: a process
that one pass did not see (re-parented mid-walk, a transient read error) is then not
counted again from its start when it reappears. Keys beyond that are forgotten, so memory
follows what is alive.

:class:`Tracker` keeps the last value per key; :class:`CpuTracker` is the common case of
user and system CPU seconds, with the time between observations for rates.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Generic, NamedTuple, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Tracker(Generic[K, V]):
    """The last value observed per key; call :meth:`update` for each key seen, then
    :meth:`sweep` to end the pass."""

    def __init__(self, grace: int = 2) -> None:
        self.grace = grace
        self._last: dict[K, V] = {}
        self._seen: dict[K, V] = {}
        self._missed: dict[K, int] = {}  # keys kept although the last passes missed them

    def update(self, key: K, value: V) -> V | None:
        """Record key's value in this pass; return the previous pass's, None when new."""
        self._seen[key] = value
        return self._last.get(key)

    def last(self, key: K) -> V | None:
        """The newest value recorded for key, in this pass or a remembered earlier one."""
        value = self._seen.get(key)
        return self._last.get(key) if value is None else value

    def sweep(self) -> None:
        """End a pass: keep what was seen, and what was missed within grace."""
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


def grown(now: Sequence[float], before: Sequence[float] | None) -> list[float]:
    """Per position, how much a cumulative counter grew: all of it when there is no earlier
    value. A counter that went back is noise, not a refund, and NaN (a value that could not
    be read) grows by nothing."""
    if before is None:
        return [v if v > 0 else 0.0 for v in now]
    return [d if (d := v - b) > 0 else 0.0 for v, b in zip(now, before, strict=True)]


class Used(NamedTuple):
    """CPU seconds since the previous observation of the same key (all of it when new)."""

    user: float
    system: float
    seconds: float | None  # time since the previous observation; None when new

    @property
    def total(self) -> float:
        return self.user + self.system


_new_used = tuple.__new__  # positional construction, skipping NamedTuple's Python-level __new__


class CpuTracker(Tracker[K, tuple[float, float, float]]):
    """Per-key CPU deltas (values: user, system, at); call :meth:`observe` for each key
    seen, then :meth:`sweep`.

    The exporter calls this for every process at every scrape, hence the plain style, which
    reads the tracker's dicts itself rather than through :meth:`Tracker.update`.
    """

    def observe(self, key: K, user: float, system: float, at: float = 0.0) -> Used:
        """Record key's cumulative CPU at time ``at`` and return what it used since last."""
        self._seen[key] = (user, system, at)
        last = self._last.get(key)
        if last is None:
            return _new_used(Used, (user, system, None))
        du = user - last[0]
        ds = system - last[1]
        return _new_used(
            Used, (du if du > 0 else 0.0, ds if ds > 0 else 0.0, at - last[2])
        )
