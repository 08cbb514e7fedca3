"""/proc/<pid>/task/<tid>/children: walking one subtree instead of all of /proc.

The controller keeps every descendant of what it runs in its own subtree (it is a child
subreaper, so orphans re-parent to it), so a walk down from it finds all of them at a cost
that follows what it supervises, not the size of the host.
"""

from __future__ import annotations

import os

from procpilot.core.procfs.files import try_read
from procpilot.core.procfs.fs import FS
from procpilot.core.procfs.pidstat import Proc, read_stat


def has_children_files(fs: FS) -> bool:
    """Whether the kernel has the children files (CONFIG_PROC_CHILDREN)."""
    return os.path.exists(fs.path("self", "task", os.getpid(), "children"))


def children(fs: FS, pid: int, threads: int) -> list[int]:
    """Direct children of pid (a child belongs to the thread that forked it: read them all)."""
    if threads == 1:
        tids = [str(pid)]
    else:
        try:
            tids = os.listdir(fs.path(pid, "task"))
        except OSError:
            return []
    found: list[int] = []
    for tid in tids:
        data = try_read(fs.path(pid, "task", tid, "children"))
        if data:
            found += map(int, data.split())
    return found


def subtree(fs: FS, top: int) -> dict[int, Proc]:
    """Every living descendant of top (top itself excluded), by pid."""
    procs: dict[int, Proc] = {}
    stack = [(top, 0)]  # (pid, threads); 0: unknown, list the tasks
    while stack:
        for pid in children(fs, *stack.pop()):
            if pid in procs:
                continue
            proc = read_stat(fs, pid)
            if proc is None:
                continue  # gone since the children list was read
            procs[pid] = proc
            stack.append((pid, proc.num_threads))
    return procs
