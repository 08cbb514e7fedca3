"""One mounted procfs, and the constants its numbers need to become base units."""

from __future__ import annotations

import os
from dataclasses import dataclass

from procpilot.core.procfs.files import read_file
from procpilot.core.procfs.hoststat import parse_boot_time

# /proc/stat has a line per CPU and a long interrupt line before btime.
HOST_STAT_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class FS:
    """A procfs mount point (``/proc``, or ``/host/proc`` in a container) and its units.

    Every reader takes one of these instead of a path string, so where procfs is and how
    many clock ticks make a second are decided once.
    """

    root: str
    ticks: int  # clock ticks per second (utime, stime, start time)
    page_size: int  # bytes per page (rss)
    boot_time: float  # unix seconds; start times are ticks after it
    fd_count_in_size: bool = False  # the size of /proc/<pid>/fd counts its entries (6.2+)

    @classmethod
    def at(cls, root: str = "/proc") -> FS:
        """The procfs at root; OSError when it has no readable btime (not a procfs)."""
        root = root.rstrip("/") or "/"
        try:
            boot_time = parse_boot_time(read_file(f"{root}/stat", HOST_STAT_LIMIT))
        except (OSError, ValueError):
            raise OSError(f"cannot read btime from {root}/stat: is {root} a procfs?") from None
        return cls(root, os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE"), boot_time,
                   _fd_count_in_size(root))

    def path(self, *parts: object) -> str:
        """``fs.path(42, "stat")`` -> ``/proc/42/stat``."""
        return "/".join((self.root, *map(str, parts)))


def _fd_count_in_size(root: str) -> bool:
    """Whether this procfs reports open descriptors as the size of /proc/<pid>/fd: we hold
    some open, so older kernels (size 0) and fixture trees (no ``self``) say no."""
    try:
        return os.stat(f"{root}/self/fd").st_size > 0
    except OSError:
        return False
