"""/proc/stat: the boot time, and the host's busy CPU time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from procpilot.core.procfs.files import read_file

if TYPE_CHECKING:
    from procpilot.core.procfs.fs import FS


def parse_boot_time(data: bytes) -> float:
    """The ``btime`` line: unix seconds at boot; ValueError when absent."""
    for line in data.splitlines():
        if line.startswith(b"btime "):
            return float(line.split()[1])
    raise ValueError("no btime line")


def parse_busy_seconds(data: bytes, ticks: int) -> float:
    """CPU seconds the host spent not idle since boot, over all cores (the first line).

    Idle and iowait are not busy; guest time is already part of user time, so the first
    eight fields after the label are summed and the idle ones taken away.
    """
    fields = [int(x) for x in data.split(b"\n", 1)[0].split()[1:]]
    if len(fields) < 4:
        raise ValueError("cpu line has fewer than 4 fields")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / ticks


def read_busy_seconds(fs: FS) -> float | None:
    """parse_busy_seconds of the live /proc/stat; None when unreadable."""
    try:
        return parse_busy_seconds(read_file(fs.path("stat")), fs.ticks)
    except (OSError, ValueError):
        return None
