"""sd_notify: how a program written for systemd's ``Type=notify`` says it is ready, what it
is doing (STATUS=), that it is alive (WATCHDOG=1) and that it is stopping (STOPPING=1).

The controller binds one datagram socket for all instances and passes its address in
NOTIFY_SOCKET. The address is abstract (``@procpilot-notify-<random>``): no file whose
permissions a program running as another user would need, no stale file after a crash, and
nobody can bind the name before the controller because nobody can guess it. SO_PASSCRED
makes the kernel attach the sender's pid to each datagram; the runtime attributes it to an
instance (its main process, its process group or its cell) or drops it and counts that.
Datagrams are read a bounded number per wake-up, so a flood cannot starve the loop; file
descriptors sent along (FDSTORE=1) are not supported and are closed at once.
"""

from __future__ import annotations

import array
import asyncio
import logging
import secrets
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_DATAGRAM = 4096  # systemd reads no more either
READS_PER_WAKE = 64
STATUS_LIMIT = 200  # characters of STATUS= kept
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_MAX_FDS = 32  # room for fds sent along, so they arrive (and are closed) rather than leak


@dataclass(frozen=True)
class Notice:
    """What one datagram says; fields it does not mention are False or None."""

    ready: bool = False  # READY=1
    stopping: bool = False  # STOPPING=1
    watchdog: bool = False  # WATCHDOG=1: still alive
    watchdog_trigger: bool = False  # WATCHDOG=trigger: act as if the watchdog expired
    status: str | None = None  # STATUS=...


def parse(data: bytes) -> Notice:
    """Newline-separated KEY=VALUE assignments; unknown keys are ignored, as systemd does."""
    fields: dict[bytes, bytes] = {}
    for line in data.split(b"\n"):
        key, sep, value = line.partition(b"=")
        if sep:
            fields[key] = value
    status = fields.get(b"STATUS")
    return Notice(
        ready=fields.get(b"READY") == b"1",
        stopping=fields.get(b"STOPPING") == b"1",
        watchdog=fields.get(b"WATCHDOG") == b"1",
        watchdog_trigger=fields.get(b"WATCHDOG") == b"trigger",
        status=None if status is None else status.decode(errors="replace")[:STATUS_LIMIT],
    )


Deliver = Callable[[int, Notice], bool]  # sender pid, notice -> whether it was taken


class NotifySocket:
    """The bound socket, read in the loop; each datagram goes to ``deliver`` with the pid
    the kernel vouches for. ``rejected`` counts datagrams no instance took."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        self.address = f"@procpilot-notify-{secrets.token_hex(8)}"
        self._loop = loop
        self._deliver = deliver
        self.rejected = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.setblocking(False)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self._sock.bind("\0" + self.address[1:])
        except OSError:
            self._sock.close()
            raise
        loop.add_reader(self._sock.fileno(), self._read)

    def _read(self) -> None:
        room = socket.CMSG_SPACE(_UCRED.size) + socket.CMSG_SPACE(_MAX_FDS * 4)
        for _ in range(READS_PER_WAKE):
            try:
                data, ancillary, flags, _ = self._sock.recvmsg(MAX_DATAGRAM, room)
            except (BlockingIOError, InterruptedError):
                return
            pid = _sender(ancillary)
            if pid is None or flags & socket.MSG_TRUNC or not self._deliver(pid, parse(data)):
                self.rejected += 1
                log.debug("notification dropped", extra={"fields": {"pid": pid}})

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


def _sender(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The sender's pid from SCM_CREDENTIALS; any file descriptors sent along are closed."""
    pid = None
    for level, kind, data in ancillary:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_CREDENTIALS and len(data) >= _UCRED.size:
            pid = _UCRED.unpack_from(data)[0]
        elif kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                socket.close(fd)
    return pid
