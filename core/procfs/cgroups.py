"""Where processes sit in the cgroup hierarchies: /proc/self/mountinfo (which hierarchies
are mounted where) and /proc/<pid>/cgroup (a process's path in each). The parsing is
core/cgroupfs.py's; this module only reads."""

from __future__ import annotations

from procpilot.core.cgroupfs import Mount, ProcCgroups, parse_mountinfo, parse_proc_cgroup
from procpilot.core.procfs.files import read_file
from procpilot.core.procfs.fs import FS

MOUNTINFO_LIMIT = 4 * 1024 * 1024  # a container host can have thousands of mounts


def read_mounts(fs: FS) -> list[Mount]:
    """This process's mounts; OSError or ValueError when they cannot be read."""
    return parse_mountinfo(read_file(fs.path("self", "mountinfo"), MOUNTINFO_LIMIT))


def read_cgroups(fs: FS, pid: int | str = "self") -> ProcCgroups:
    """A process's cgroups; OSError when it is gone, ValueError when unreadable."""
    return parse_proc_cgroup(read_file(fs.path(pid, "cgroup")))
