"""/proc/<pid>/io: bytes the process made the storage layer read and write.

``read_bytes`` and ``write_bytes`` count what reached (or would reach) the block layer,
so reads served from the page cache are not in them; ``rchar``/``wchar`` count every byte
through read(2)/write(2) and are not used. Reading another user's file needs the ptrace
access check (root, or CAP_SYS_PTRACE).
"""

from __future__ import annotations

from typing import NamedTuple

from procpilot.core.procfs.files import labeled_int


class IoBytes(NamedTuple):
    read_bytes: int
    write_bytes: int


def parse_io(data: bytes) -> IoBytes:
    """The file's words are ``label: value`` pairs in a fixed order; when read_bytes and
    write_bytes are where they always are (5th and 6th), take them from there, else search."""
    words = data.split()
    if len(words) >= 12 and words[8] == b"read_bytes:" and words[10] == b"write_bytes:":
        return IoBytes(int(words[9]), int(words[11]))
    return IoBytes(labeled_int(data, b"read_bytes:"), labeled_int(data, b"write_bytes:"))
