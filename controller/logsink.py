"""Instance output: a pipe read by the event loop into a size-rotated file or our stderr.

Rotation happens only between lines, so every line sits whole in exactly one file. A file
may grow past ``max_size`` by one line when a single line is longer than what is left (or
longer than a whole file); the alternative would be splitting it. A line still incomplete
after :data:`PARTIAL_LIMIT` bytes is written as it is, and the file is not rotated until
that line ends, which bounds memory per instance without ever splitting a line.
A partial last line at end of output gets a newline so the next process's output starts
on its own line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Protocol

READ_SIZE = 64 * 1024
PARTIAL_LIMIT = 64 * 1024


class Sink(Protocol):
    def write(self, data: bytes, complete: bool) -> None:
        """complete: data is whole lines; otherwise it is the start of an unfinished line."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class RotatingFile:
    """``path`` plus ``path.1`` .. ``path.<backups>``, rotated by size between lines."""

    def __init__(self, path: str, max_size: int, backups: int) -> None:
        self.path = path
        self.max_size = max_size
        self.backups = backups
        self._mid_line = False
        self._fd = -1
        self.size = 0
        self._open()

    def _open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.size = os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def reopen(self) -> None:
        """Start writing to whatever is at ``path`` now (after an outside logrotate)."""
        self.close()
        self._open()

    def rotate(self) -> None:
        self.close()
        if self.backups == 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        for n in range(self.backups - 1, -1, -1):
            src = f"{self.path}.{n}" if n else self.path
            with contextlib.suppress(FileNotFoundError):
                os.replace(src, f"{self.path}.{n + 1}")
        self._open()

    def _append(self, data: bytes) -> None:
        _write_all(self._fd, data)
        self.size += len(data)

    def write(self, data: bytes, complete: bool) -> None:
        if self._mid_line:
            # The line a fragment started ends here, in the same file.
            end = data.find(b"\n") + 1 if complete else len(data)
            self._append(data[:end])
            data = data[end:]
            self._mid_line = not complete
        if not complete:
            if data:
                if self.size and self.size + len(data) > self.max_size:
                    self.rotate()
                self._append(data)
                self._mid_line = True
            return
        while data:
            room = self.max_size - self.size
            if len(data) <= room:
                self._append(data)
                return
            cut = data.rfind(b"\n", 0, max(room, 0)) + 1  # whole lines that still fit
            if cut == 0:
                if self.size:
                    self.rotate()
                    continue
                cut = data.find(b"\n") + 1  # one line longer than a file: it gets its own
            self._append(data[:cut])
            data = data[cut:]
            if data:
                self.rotate()


class PrefixedStream:
    """Lines to a file descriptor (the controller's stderr), each prefixed with its source."""

    def __init__(self, prefix: str, fd: int = 2) -> None:
        self.prefix = prefix.encode()
        self.fd = fd
        self._mid_line = False

    def write(self, data: bytes, complete: bool) -> None:
        pieces = data.split(b"\n")
        out = bytearray()
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            if last and not piece:
                break
            if i or not self._mid_line:
                out += self.prefix
            out += piece
            if not last:
                out += b"\n"
        self._mid_line = not complete
        _write_all(self.fd, bytes(out))


class LogFiles:
    """Open rotating files by path, shared by every process of one instance slot."""

    def __init__(self) -> None:
        self._files: dict[str, RotatingFile] = {}

    def get(self, path: str, max_size: int, backups: int) -> RotatingFile:
        f = self._files.get(path)
        if f is None or (f.max_size, f.backups) != (max_size, backups):
            if f is not None:
                f.close()
            f = self._files[path] = RotatingFile(path, max_size, backups)
        return f

    def reopen_all(self) -> None:
        for f in self._files.values():
            f.reopen()

    def close(self, path: str) -> None:
        f = self._files.pop(path, None)
        if f is not None:
            f.close()

    def close_all(self) -> None:
        for path in list(self._files):
            self.close(path)


class PipeReader:
    """Reads one process's output pipe in the loop and hands whole lines to a sink."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, sink: Sink) -> None:
        self._loop = loop
        self._fd = fd
        self.sink = sink
        self._partial = b""
        self._fragment_open = False  # the sink holds the start of a line we have not ended
        self.done: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        # One read per wake-up: a flooding child cannot starve the rest of the loop.
        try:
            chunk = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return
        data = self._partial + chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            self.sink.write(data[:cut], complete=True)
            self._fragment_open = False
        self._partial = data[cut:]
        if len(self._partial) > PARTIAL_LIMIT:
            self.sink.write(self._partial, complete=False)
            self._partial = b""
            self._fragment_open = True

    def close(self) -> None:
        """Stop reading; a partial last line is written with a newline added."""
        if self.done.done():
            return
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
        if self._partial or self._fragment_open:
            self.sink.write(self._partial + b"\n", complete=True)
            self._partial = b""
        self.done.set_result(None)
