"""What rarely changes about a process: its arguments, executable and owner.

Each reader returns an empty value when the process cannot be read (kernel threads have
no cmdline or exe, other users' exe needs privileges, and any process may vanish).
"""

from __future__ import annotations

import os

from procpilot.core.procfs.files import try_read
from procpilot.core.procfs.fs import FS

CMDLINE_LIMIT = 32 * 1024  # bytes of cmdline kept for matching and labels


def parse_cmdline(raw: bytes) -> tuple[str, ...]:
    """NUL-separated argv as strings; undecodable bytes are replaced, not fatal."""
    if not raw:
        return ()
    return tuple(a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0"))


def read_cmdline(fs: FS, pid: int) -> tuple[str, ...]:
    """argv (its first 32 KiB); empty for kernel threads, zombies and on error."""
    return parse_cmdline(try_read(fs.path(pid, "cmdline"), CMDLINE_LIMIT) or b"")


def read_exe(fs: FS, pid: int) -> str:
    """Path of the executable; empty when unreadable."""
    try:
        return os.readlink(fs.path(pid, "exe"))
    except OSError:
        return ""


def read_uid(fs: FS, pid: int) -> int | None:
    """The owner's uid (of /proc/<pid> itself, which is the real uid); None when gone."""
    try:
        return os.stat(fs.path(pid)).st_uid
    except OSError:
        return None
