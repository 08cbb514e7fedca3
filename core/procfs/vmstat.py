"""/proc/vmstat: kernel-wide memory event counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from procpilot.core.procfs.files import try_read

if TYPE_CHECKING:
    from procpilot.core.procfs.fs import FS


def parse_oom_kills(data: bytes) -> int | None:
    """The ``oom_kill`` counter (OOM kills since boot), None on kernels without it."""
    for line in data.splitlines():
        if line.startswith(b"oom_kill "):
            return int(line.split()[1])
    return None


def read_oom_kills(fs: FS) -> int | None:
    """The host's OOM kills since boot, None when unavailable."""
    data = try_read(fs.path("vmstat"))
    return None if data is None else parse_oom_kills(data)
