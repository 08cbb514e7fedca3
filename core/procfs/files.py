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


def read_growing(path: str, first: int, limit: int = READ_LIMIT) -> bytes:
    """read_file with a small buffer first and, only when the file filled it, once more
    whole: the kernel's cost of a /proc read grows with the buffer asked for."""
    data = read_file(path, first)
    return data if len(data) < first else read_file(path, limit)


def try_read(path: str, limit: int = READ_LIMIT) -> bytes | None:
    """read_file, or None when the file cannot be read (the process is gone, say)."""
    try:
        return read_file(path, limit)
    except OSError:
        return None


def labeled(data: bytes, label: bytes) -> bytes:
    """The first word after ``label`` on the line that starts with it (``b"VmSwap:"`` in
    status, ``b"read_bytes:"`` in io); ValueError when no line starts with it.

    Finding one label is a C-level search of the file, which beats splitting every line of
    the larger files (status has about 60) when only two or three are wanted.
    """
    if data.startswith(label):
        at = 0
    else:
        at = data.find(b"\n" + label) + 1
        if at == 0:
            raise ValueError(f"no {label.decode()!r} line")
    end = data.find(b"\n", at)
    words = data[at + len(label): end if end >= 0 else len(data)].split()
    if not words:
        raise ValueError(f"{label.decode()!r} line has no value")
    return words[0]


def labeled_int(data: bytes, label: bytes, scale: int = 1) -> int:
    """:func:`labeled` as an integer, times scale (1024 for the ``kB`` of status and smaps)."""
    return int(labeled(data, label)) * scale
