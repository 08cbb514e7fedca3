"""Reading /proc files: one read each, since procfs generates a file whole at open."""

from __future__ import annotations

import os

READ_LIMIT = 64 * 1024  # more than any single-line /proc file holds


def read_file(path: str, limit: int = READ_LIMIT) -> bytes:
    """One read of a /proc file (they are generated whole at open); OSError passes through."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def try_read(path: str, limit: int = READ_LIMIT) -> bytes | None:
    """read_file, or None when the file cannot be read (the process is gone, say)."""
    try:
        return read_file(path, limit)
    except OSError:
        return None
