"""RSS and CPU of each instance's process tree, from one procfs snapshot per tick.

Members of an instance are the descendants of its main pid together with every process in
its process group (pgrp == main pid) and their descendants: a double-forked grandchild is
re-parented to the controller (a subreaper) but keeps the group, so it still counts.

CPU is accumulated from per-process deltas keyed by (pid, start ticks), so counters stay
monotonic when processes and whole instances come and go. What a process spends between the
last sample and its exit is not seen; at one sample a second that is small.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter.procfs import Proc


def group_members(procs: dict[int, Proc], roots: Iterable[int]) -> dict[int, list[Proc]]:
    """root pid -> processes of its tree (root included when alive); one pass over procs."""
    children: dict[int, list[int]] = defaultdict(list)
    groups: dict[int, list[int]] = defaultdict(list)
    for p in procs.values():
        children[p.ppid].append(p.pid)
        groups[p.pgrp].append(p.pid)
    result: dict[int, list[Proc]] = {}
    for root in roots:
        seen: set[int] = set()
        stack = [root, *groups.get(root, ())]
        while stack:
            pid = stack.pop()
            if pid in seen or pid not in procs:
                continue
            seen.add(pid)
            stack.extend(children.get(pid, ()))
        result[root] = [procs[pid] for pid in seen]
    return result


@dataclass
class CpuMeter:
    """Monotonic user/system seconds over a changing set of processes."""

    user: float = 0.0
    system: float = 0.0
    _last: dict[tuple[int, int], tuple[float, float]] = field(default_factory=dict)

    def add(self, members: Iterable[Proc]) -> None:
        """Account what each member used since it was last seen (all of it when new)."""
        last = self._last
        now: dict[tuple[int, int], tuple[float, float]] = {}
        for p in members:
            prev_user, prev_system = last.get(p.key, (0.0, 0.0))
            self.user += max(p.utime - prev_user, 0.0)
            self.system += max(p.stime - prev_system, 0.0)
            now[p.key] = (p.utime, p.stime)
        self._last = now

    @property
    def total(self) -> float:
        return self.user + self.system
