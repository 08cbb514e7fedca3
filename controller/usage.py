"""RSS and CPU of each instance's process tree, from one procfs pass per tick.

The pass reads only the controller's own subtree (``procfs.subtree``): as a subreaper it
keeps every descendant of every instance in that subtree, orphans included, so nothing
relevant is outside it. A full /proc scan would cost in proportion to the whole host instead
(10 000 unrelated processes made it ~12 % of a core at one pass a second; the subtree walk
is proportional to what is supervised). On a kernel without the children files the full
snapshot is used.

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

from procpilot.core.cpu import CpuTracker
from procpilot.core.procfs import Proc


def tree_members(procs: dict[int, Proc], roots: Iterable[int]) -> dict[int, list[Proc]]:
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


class CpuMeter:
    """Monotonic user/system seconds over a changing set of processes."""

    def __init__(self) -> None:
        self.user = 0.0
        self.system = 0.0
        self._used: CpuTracker[tuple[int, int]] = CpuTracker()

    def add(self, members: Iterable[Proc]) -> None:
        """Account what each member used since it was last seen (all of it when new)."""
        for p in members:
            used = self._used.observe(p.key, p.utime, p.stime)
            self.user += used.user
            self.system += used.system
        self._used.sweep()

    @property
    def total(self) -> float:
        return self.user + self.system
