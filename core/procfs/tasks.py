"""/proc/<pid>/task and /proc/<pid>/fd: a process's threads and its open files.

Both are directories whose size is what we want, so these readers list or stat them
instead of parsing a file.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from procpilot.core.procfs.files import try_read

if TYPE_CHECKING:
    from procpilot.core.procfs.fs import FS


def state_of(stat_line: bytes) -> str:
    """The one-letter state of a stat line: the first field after the last ``") "``."""
    return stat_line.rpartition(b") ")[2][:1].decode("ascii", "replace")


def thread_states(fs: FS, pid: int) -> list[str]:
    """The state letter of each thread; OSError when the process is gone. A thread that
    ends while the list is read is left out (it no longer has a state)."""
    states = []
    for tid in os.listdir(fs.path(pid, "task")):
        data = try_read(fs.path(pid, "task", tid, "stat"))
        if data:
            states.append(state_of(data))
    return states


def count_fds(fs: FS, pid: int) -> int:
    """Open file descriptors of pid; OSError when gone or not permitted.

    Since Linux 6.2 the size of /proc/<pid>/fd is the number of open descriptors, one
    stat(2) instead of reading the directory (``fs.fd_count_in_size``, probed once).
    """
    path = f"{fs.root}/{pid}/fd"  # not fs.path(): this runs for every grouped process
    if fs.fd_count_in_size:
        return os.stat(path).st_size
    return len(os.listdir(path))
