"""procfs, read by one small parser per file; the only code that opens /proc paths.

One :class:`FS` value carries the mount point and the units (clock ticks, page size, boot
time), as prometheus/procfs does in Go: ``pidstat`` (/proc/<pid>/stat), ``details``
(cmdline, exe, owner), ``status``, ``io``, ``smaps`` (smaps_rollup), ``limits``, ``tasks``
(threads and open fds), ``cgroups``, ``hoststat`` (/proc/stat), ``vmstat``, ``kernel``
(/proc/sys/kernel limits), ``children`` (the subtree walk) and ``snapshot`` (one pass over
every process, with caches, for the exporter).
"""

from procpilot.core.procfs.children import has_children_files, subtree
from procpilot.core.procfs.details import CMDLINE_LIMIT
from procpilot.core.procfs.files import read_file, try_read
from procpilot.core.procfs.fs import FS
from procpilot.core.procfs.pidstat import PF_KTHREAD, Proc, parse_stat
from procpilot.core.procfs.snapshot import READ_ERROR_REASONS, ProcReader, ReadErrors, Snapshot

__all__ = [
    "CMDLINE_LIMIT",
    "FS",
    "PF_KTHREAD",
    "READ_ERROR_REASONS",
    "Proc",
    "ProcReader",
    "ReadErrors",
    "Snapshot",
    "has_children_files",
    "parse_stat",
    "read_file",
    "subtree",
    "try_read",
]
