"""/proc/sys/kernel: the host-wide caps on process ids and threads."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from procpilot.core.procfs.files import try_read

if TYPE_CHECKING:
    from procpilot.core.procfs.fs import FS


class KernelLimits(NamedTuple):
    pid_max: int | None  # pids wrap around below this (kernel.pid_max)
    threads_max: int | None  # most threads the kernel will create (kernel.threads-max)


def _number(data: bytes | None) -> int | None:
    if data is None:
        return None
    try:
        return int(data)
    except ValueError:
        return None


def read_kernel_limits(fs: FS) -> KernelLimits:
    """Both limits, None for one that cannot be read (a fixture tree, say)."""
    return KernelLimits(_number(try_read(fs.path("sys", "kernel", "pid_max"))),
                        _number(try_read(fs.path("sys", "kernel", "threads-max"))))
