"""Which processes belong to which instance, from one procfs pass.

The pass (``ProcessRuntime.measure``) reads only the controller's own subtree
(``procfs.subtree``): as a subreaper it keeps every descendant of every instance in that
subtree, orphans included, so nothing relevant is outside it. A full /proc scan would cost
in proportion to the whole host instead (10 000 unrelated processes made it ~12 % of a core
at one pass a second; the subtree walk is proportional to what is supervised). On a kernel
without the children files the full snapshot is used.

Members of an instance are the descendants of its main pid together with every process in
its process group (pgrp == main pid) and their descendants: a double-forked grandchild is
re-parented to the controller (a subreaper) but keeps the group, so it still counts.

CPU is accumulated from per-process deltas (``core.cpu``), so counters stay monotonic when
processes and whole instances come and go. What a process spends between the last sample
and its exit is not seen; at one sample a second that is small.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

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
