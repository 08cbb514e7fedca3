"""RSS and CPU of each instance's process tree, from one procfs pass per tick.

The pass reads only the controller's own subtree, walking /proc/<pid>/task/<tid>/children
down from the controller: as a subreaper it keeps every descendant of every instance in that
subtree, orphans included, so nothing relevant is outside it. A full /proc scan would cost in
proportion to the whole host instead (10 000 unrelated processes made it ~12 % of a core at
one pass a second; the subtree walk is proportional to what is supervised). On a kernel
without the children files the full snapshot is used.

Members of an instance are the descendants of its main pid together with every process in
its process group (pgrp == main pid) and their descendants: a double-forked grandchild is
re-parented to the controller (a subreaper) but keeps the group, so it still counts.

CPU is accumulated from per-process deltas keyed by (pid, start ticks), so counters stay
monotonic when processes and whole instances come and go. What a process spends between the
last sample and its exit is not seen; at one sample a second that is small.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from procpilot.core.procfs import Proc, ProcReader, parse_stat


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:
        return None
    finally:
        os.close(fd)


def _children(root: str, pid: int, threads: int) -> list[int]:
    """Direct children of pid (a child belongs to the thread that forked it: read them all)."""
    if threads == 1:
        tids = [str(pid)]
    else:
        try:
            tids = os.listdir(f"{root}/{pid}/task")
        except OSError:
            return []
    found: list[int] = []
    for tid in tids:
        data = _read(f"{root}/{pid}/task/{tid}/children")
        if data:
            found += map(int, data.split())
    return found


def has_children_files(root: str = "/proc") -> bool:
    return os.path.exists(f"{root}/self/task/{os.getpid()}/children")


def subtree(reader: ProcReader, top: int) -> dict[int, Proc]:
    """Every living descendant of top (top itself excluded), by pid."""
    procs: dict[int, Proc] = {}
    stack = [(top, 0)]  # (pid, threads); 0: unknown, list the tasks
    while stack:
        for pid in _children(reader.root, *stack.pop()):
            if pid in procs:
                continue
            data = _read(f"{reader.root}/{pid}/stat")
            if data is None:
                continue  # gone since the children list was read
            try:
                proc = parse_stat(data, reader.boot_time, reader.ticks, reader.page_size)
            except (ValueError, IndexError):
                continue
            procs[pid] = proc
            stack.append((pid, proc.num_threads))
    return procs


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
