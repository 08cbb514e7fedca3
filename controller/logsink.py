"""Instance output: a pipe read by the event loop into a size-rotated file or our stderr.

Rotation happens only between lines, so every line sits whole in exactly one file. A file
may grow past ``max_size`` by one line when a single line is longer than what is left (or
longer than a whole file); the alternative would be splitting it. A line still incomplete
after :data:`PARTIAL_LIMIT` bytes is written as it is, and the file is not rotated until
that line ends, which bounds memory per instance without ever splitting a line.
A partial last line at end of output gets a newline so the next process's output starts
on its own line.

Sinks stack: :class:`Timestamps` starts each line with the time it was read and
:class:`Tail` keeps an instance's last lines for hooks, each passing everything on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from procpilot.controller.config import Logs

READ_SIZE = 64 * 1024
PARTIAL_LIMIT = 64 * 1024
DRAIN_READS = 16  # at an exit, at most this many reads of what is left in the pipe
TAIL_LINES = 10  # last lines of an instance's output a hook gets
TAIL_LINE_BYTES = 512  # each cut to this


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
        self.forgotten = False  # by LogFiles: each write opens and closes it
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
        if self._fd < 0:  # closed while a process of a retired instance still writes
            self._open()
        _write_all(self._fd, data)
        self.size += len(data)
        if self.forgotten:
            self.close()  # nothing would close it later

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


def rfc3339(unix: float) -> str:
    """2024-05-01T12:00:00.123Z: RFC 3339 in UTC, to the millisecond."""
    ms = int(unix * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class Timestamps:
    """Starts every line with the wall-clock time it was read and a space; a line that
    arrives in pieces gets the time of its first piece."""

    def __init__(self, sink: Sink, clock: Callable[[], float]) -> None:
        self.sink = sink
        self.clock = clock
        self._mid_line = False

    def write(self, data: bytes, complete: bool) -> None:
        stamp = rfc3339(self.clock()).encode() + b" "
        body = data.replace(b"\n", b"\n" + stamp)
        if complete:  # nothing follows the last newline yet
            body = body[: -len(stamp)]
        if not self._mid_line:
            body = stamp + body
        self._mid_line = not complete
        self.sink.write(body, complete)


class Tail:
    """Passes everything on and keeps the last lines in ``lines`` (shared by an instance's
    stdout and stderr), each cut to TAIL_LINE_BYTES."""

    def __init__(self, sink: Sink, lines: deque[bytes]) -> None:
        self.sink = sink
        self.lines = lines

    def write(self, data: bytes, complete: bool) -> None:
        self.sink.write(data, complete)
        if complete:
            for line in data.rsplit(b"\n", TAIL_LINES + 1)[-TAIL_LINES - 1 : -1]:
                self.lines.append(line[:TAIL_LINE_BYTES])


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
        """The file at path, with these settings from now on (processes still writing to
        it keep their handle: a rolling restart changes settings under them)."""
        f = self._files.get(path)
        if f is None:
            f = self._files[path] = RotatingFile(path, max_size, backups)
        f.max_size, f.backups = max_size, backups
        return f

    def reopen_all(self) -> None:
        for f in self._files.values():
            f.reopen()

    def close(self, path: str) -> None:
        """Release the file's descriptor. The file stays known: what a retired instance's
        leftover processes still write until their stop timeout opens it again, and
        close_all() at shutdown closes it for good."""
        f = self._files.get(path)
        if f is not None:
            f.close()

    def forget(self, path: str) -> None:
        """Close the file and drop it: no config names it any more (or its program left).
        What processes still write to it (a rollout's old ones, until they are gone) lands
        in it, each write opening and closing it: nothing holds it open, and reopen_all
        (SIGUSR1) no longer recreates it."""
        f = self._files.pop(path, None)
        if f is not None:
            f.forgotten = True
            f.close()

    def close_all(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


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
        self._read()

    def drain(self) -> None:
        """Read what is in the pipe now (up to DRAIN_READS reads): when the process
        exited, its last lines, before its exit is told to anyone."""
        for _ in range(DRAIN_READS):
            if not self._read():
                return

    def _read(self) -> bool:
        """One read; False when there was nothing (more) to read."""
        if self.done.done():
            return False
        try:
            chunk = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return False
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
        return True

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


def log_paths(logs: Logs, program: str, index: int) -> list[str]:
    """An instance's files: <program>-<index>.log, and .err.log with stderr: separate."""
    base = os.path.join(logs.directory, f"{program}-{index}")
    return [f"{base}.log", *([f"{base}.err.log"] if logs.stderr == "separate" else [])]


def instance_sinks(logs: Logs | None, program: str, index: int, *, files: LogFiles,
                   clock: Callable[[], float], tail: deque[bytes]) -> tuple[Sink, Sink | None]:
    """Where an instance's stdout and, when kept apart, stderr go: its files (or the
    controller's stderr, prefixed, without ``logs``), with timestamps when asked, through
    its tail."""
    if logs is None:
        return Tail(PrefixedStream(f"{program}:{index} | "), tail), None
    os.makedirs(logs.directory, exist_ok=True)
    sinks: list[Sink] = []
    for path in log_paths(logs, program, index):
        sink: Sink = files.get(path, logs.max_size, logs.backups)
        if logs.timestamps:
            sink = Timestamps(sink, clock)
        sinks.append(Tail(sink, tail))
    return sinks[0], sinks[1] if len(sinks) > 1 else None
