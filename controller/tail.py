"""Print and follow instance log files for ``procpilotctl logs``, across rotation.

The controller rotates by renaming ``x.log`` to ``x.log.1`` and creating a new ``x.log``.
A follower holds the old file open, so after noticing a new inode at the path it first
reads the old file to its end (nothing written before the rename is lost), then switches.
With several files, every line is prefixed with its label and printed whole, so lines of
different instances never interleave mid-line.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # procpilotctl imports this: no typing module at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import BinaryIO

CHUNK = 64 * 1024


def lines(data: bytes) -> list[bytes]:
    """Split after each newline only (a carriage return is not a line end in a log)."""
    parts = data.split(b"\n")
    return [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def last_lines(f: BinaryIO, count: int | None) -> bytes:
    """The last ``count`` lines of an open file (all when None), leaving it at its end."""
    end = f.seek(0, os.SEEK_END)
    if count is None:
        f.seek(0)
        data = f.read(end)
    else:
        start, data = end, b""
        # Read backwards until count+1 newlines (the last line may lack its newline).
        while start > 0 and data.count(b"\n") <= count:
            start = max(0, start - CHUNK)
            f.seek(start)
            data = f.read(end - start)
        data = b"".join(lines(data)[-count:]) if count else b""
    f.seek(end)
    return data


class Followed:
    """One followed path: the open file, its identity and the unfinished last line."""

    def __init__(self, path: str, label: bytes) -> None:
        self.path = path
        self.label = label
        self.file: BinaryIO | None = None
        self.ident: tuple[int, int] | None = None
        self.partial = b""

    def open(self) -> None:
        """Open the path if it exists (from its start); a missing file is retried on read."""
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
        except FileNotFoundError:
            return
        st = os.fstat(f.fileno())
        self.file, self.ident = f, (st.st_dev, st.st_ino)

    def _rotated(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # between rename and re-create: keep reading the old file
        return (st.st_dev, st.st_ino) != self.ident

    def read(self) -> bytes:
        """Whatever was appended since the last call, following a rotation."""
        if self.file is None:
            self.open()  # created after we started: read it all
            if self.file is None:
                return b""
        if os.fstat(self.file.fileno()).st_size < self.file.tell():
            self.file.seek(0)  # truncated in place (copytruncate-style rotation)
        data = self.file.read()
        if self._rotated():
            data += self.file.read()
            self.file.close()
            self.file = None
            self.open()
            if self.file is not None:
                data += self.file.read()
        return data

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _prefixed(followed: Followed, data: bytes) -> bytes:
    """Whole lines of data, each prefixed by the label; the rest is kept for later."""
    data = followed.partial + data
    cut = data.rfind(b"\n") + 1
    followed.partial = data[cut:]
    return b"".join(followed.label + line for line in lines(data[:cut]))


def _prefixes(labels: Sequence[str]) -> list[bytes]:
    """'web:0 | ' per file when there are several, else nothing."""
    return [f"{label} | ".encode() if len(labels) > 1 else b"" for label in labels]


def _opened(paths: Sequence[str], labels: Sequence[str]) -> list[Followed]:
    files = [Followed(p, prefix) for p, prefix in zip(paths, _prefixes(labels), strict=True)]
    for f in files:
        f.open()
    return files


def _show(files: Sequence[Followed], out: BinaryIO, count: int | None) -> None:
    for f in files:
        if f.file is not None:
            text = last_lines(f.file, count)
            out.write(b"".join(f.label + line for line in lines(text)))
    out.flush()


def show(paths: Sequence[str], labels: Sequence[str], out: BinaryIO, count: int | None) -> None:
    """The last ``count`` lines of each file (all when None), one file after the other."""
    files = _opened(paths, labels)
    _show(files, out, count)
    for f in files:
        f.close()


def follow(
    paths: Sequence[str],
    labels: Sequence[str],
    out: BinaryIO,
    count: int | None,
    *,
    stop: Callable[[], bool] = lambda: False,
    poll: float = 0.25,
) -> None:
    """Show the last ``count`` lines, then copy what is appended until ``stop()`` or ^C.

    The files are opened once, before the last lines are read, so nothing written between
    showing and following is missed.
    """
    many = len(paths) > 1
    files = _opened(paths, labels)
    _show(files, out, count)
    try:
        while not stop():
            wrote = False
            for f in files:
                data = f.read()
                if data:
                    out.write(_prefixed(f, data) if many else data)
                    wrote = True
            if wrote:
                out.flush()
            else:
                time.sleep(poll)
    finally:
        for f in files:
            f.close()
