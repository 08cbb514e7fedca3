"""Exits between scrapes, from the kernel's taskstats: the one thing the exporter does in
the background instead of at scrape time, because an exit cannot be observed afterwards.

A daemon thread subscribes to taskstats (core/taskstats.py) and keeps, until the next
scrape takes them, the processes that ended: per-thread records are summed per process
and completed by the record of its last thread. Memory is bounded: at most ``capacity``
ended processes wait for a scrape and at most ``capacity`` processes have partial thread
sums; what does not fit is dropped and counted, as are the records the kernel drops when
the socket buffer is full. Kernel threads are ignored (they are never grouped).

What the exporter does with them (which group, what a scrape already counted) is the
groups collector's business; this module only listens.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Container
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from procpilot.core import taskstats
from procpilot.core.taskstats import TaskExit

log = logging.getLogger("procpilot.exporter")

SO_MEMINFO = 55  # linux/socket.h; the socket's counters, SK_MEMINFO_DROPS at index 8
SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 4 * 1024 * 1024  # kernel memory for records the thread has not read yet
CAPACITY = 20_000
START_SLACK = 1.5  # seconds: records give a process's start to within one second


def boot_offset() -> float:
    """The wall-clock time of boot, as the wall clock reads now (/proc/stat's btime, to the
    nanosecond). It moves when the wall clock is stepped (NTP, an admin); times since boot
    do not, so they are what start times are compared in."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


class ProcessExit(NamedTuple):
    """A process that ended, its threads' records summed."""

    tgid: int
    start: float  # seconds since boot (as /proc/<pid>/stat counts), within a second
    comm: str
    ppid: int
    uid: int
    user: float  # tick-sampled CPU seconds
    system: float
    runtime: float  # exact CPU seconds from the scheduler, 0 when the kernel omits it
    minflt: int
    majflt: int
    nvcsw: int  # the main thread's, as /proc/<pid>/status shows
    nivcsw: int
    read_bytes: int
    write_bytes: int


@dataclass(slots=True)
class _Partial:
    """Threads of a living process that have already exited, summed."""

    first: TaskExit  # the first record seen; the main thread's replaces it
    updated: float
    sums: list[float] = field(default_factory=lambda: [0.0] * 8)  # user .. write_bytes

    def add(self, rec: TaskExit, now: float) -> None:
        s = self.sums
        s[0] += rec.user
        s[1] += rec.system
        s[2] += rec.runtime
        s[3] += rec.minflt
        s[4] += rec.majflt
        s[5] += rec.read_bytes
        s[6] += rec.write_bytes
        if rec.pid == rec.tgid:
            self.first = rec
        self.updated = now

    def process(self) -> ProcessExit:
        s, main = self.sums, self.first
        main_switches = (main.nvcsw, main.nivcsw) if main.pid == main.tgid else (0, 0)
        return ProcessExit(main.tgid, main.start, main.comm, main.ppid, main.uid, s[0], s[1],
                           s[2], int(s[3]), int(s[4]), *main_switches, int(s[5]), int(s[6]))


class Batch(NamedTuple):
    """What a scrape takes: the ended processes, and records lost since the last take."""

    exits: list[ProcessExit]
    lost_socket: int  # thread records the kernel dropped: the socket buffer was full
    lost_capacity: int  # processes dropped because the listener's buffers were full


class ExitSource(Protocol):
    """Where the groups collector gets ended processes from: the listener, or a test's fake."""

    @property
    def listening(self) -> bool: ...

    def take(self, alive: Container[int]) -> Batch: ...


def possible_cpus() -> str:
    """Every CPU the kernel may bring online, as a list like ``0-3``: registering for fewer
    would miss the exits on the others (and the kernel refuses CPUs outside this set)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            return f.read().strip()
    except OSError:
        return f"0-{(os.cpu_count() or 1) - 1}"


class ExitListener:
    """The taskstats subscription and its thread; :meth:`start` says why it cannot run."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._done: list[ProcessExit] = []
        self._partial: dict[int, _Partial] = {}
        self._lost_capacity = 0
        self._socket_drops = 0  # the socket's drop counter at the last take
        self._last_take = time.time()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def listening(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> str | None:
        """Subscribe and start the thread; None on success, else why taskstats is unusable."""
        if self.listening:
            return None
        self.stop()  # a thread that died (a socket error) leaves its socket open and registered
        try:
            sock, family = _subscribe()
        except PermissionError as e:
            return f"needs CAP_NET_ADMIN (root): {e.strerror}"
        except (OSError, ValueError) as e:
            return str(e)
        self._sock = sock
        self._socket_drops = 0  # a new socket counts from zero
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(sock, family),
                                        name="taskstats", daemon=True)
        self._thread.start()
        return None

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join()
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def take(self, alive: Container[int]) -> Batch:
        """The processes that ended since the last take, and what was lost meanwhile.

        Partial sums of processes not in ``alive`` that no record updated since the last
        take are dropped too: their last record was lost, so they will never complete.
        """
        now = time.time()
        with self._lock:
            done, self._done = self._done, []
            lost, self._lost_capacity = self._lost_capacity, 0
            stale = [pid for pid, part in self._partial.items()
                     if part.updated < self._last_take and pid not in alive]
            for pid in stale:
                del self._partial[pid]
            self._last_take = now
        drops = self._read_socket_drops()
        lost_socket, self._socket_drops = drops - self._socket_drops, drops
        return Batch(done, max(lost_socket, 0), lost)

    def _read_socket_drops(self) -> int:
        sock = self._sock
        if sock is None:
            return self._socket_drops
        try:
            counters = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 9 * 4)
        except OSError:
            return self._socket_drops
        drops: int = struct.unpack_from("=9I", counters)[8]
        return drops

    def _run(self, sock: socket.socket, family: int) -> None:
        while not self._stopping.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # records were dropped; the socket counted them
                    continue
                if not self._stopping.is_set():
                    log.error("taskstats listener stopped", extra={"fields": {"err": e}})
                return
            try:
                records = list(taskstats.parse_exits(data, family))
            except (OSError, ValueError) as e:
                log.warning("unreadable taskstats message", extra={"fields": {"err": e}})
                continue
            with self._lock:
                for rec in records:
                    if not rec.kernel:
                        self._add(rec)

    def _add(self, rec: TaskExit) -> None:
        """Count one thread's record (the lock is held).

        The record's start is wall-clock time (the kernel's clock at the exit minus the time
        the process lived), while /proc/<pid>/stat counts from boot: it is turned into time
        since boot now, just after the exit. Turned with /proc/stat's btime read at start-up,
        or at the next scrape, a wall-clock step in between would move it by the step, and
        the process would be taken for one no scrape saw and counted twice.
        """
        rec = rec._replace(start=rec.start - boot_offset())
        part = self._partial.get(rec.tgid)
        if part is not None and abs(part.first.start - rec.start) > START_SLACK:
            part = None  # the pid was reused: the old partial sum will never complete
        if part is None:
            if rec.last and rec.pid == rec.tgid:  # a single-threaded process: the usual case
                self._finish(ProcessExit(
                    rec.tgid, rec.start, rec.comm, rec.ppid, rec.uid, rec.user, rec.system,
                    rec.runtime, rec.minflt, rec.majflt, rec.nvcsw, rec.nivcsw,
                    rec.read_bytes, rec.write_bytes))
                return
            if len(self._partial) >= self.capacity:
                if rec.last:  # count the process once, when it ends
                    self._lost_capacity += 1
                return
            part = self._partial[rec.tgid] = _Partial(rec, 0.0)
        part.add(rec, time.time())
        if rec.last:
            del self._partial[rec.tgid]
            self._finish(part.process())

    def _finish(self, exit: ProcessExit) -> None:
        if len(self._done) >= self.capacity:
            self._lost_capacity += 1
        else:
            self._done.append(exit)


def _subscribe() -> tuple[socket.socket, int]:
    """A netlink socket registered for every CPU's exits, and the taskstats family id.

    Checks the struct version on a record of our own before registering, so an old kernel
    is refused at once rather than at its first exit. Needs CAP_NET_ADMIN.
    """
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, taskstats.NETLINK_GENERIC)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:  # without CAP_NET_ADMIN: as much as net.core.rmem_max allows
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((0, 0))
        sock.settimeout(5.0)
        sock.send(taskstats.family_request(1))
        try:
            family = taskstats.parse_family_id(sock.recv(65536))
        except OSError as e:
            raise OSError(e.errno, f"no taskstats in this kernel: {e.strerror}") from None
        sock.send(taskstats.stats_request(family, os.getpid(), 2))
        if not list(taskstats.parse_exits(sock.recv(65536), family)):  # ValueError: too old
            raise ValueError("taskstats sent no record of this process")
        sock.send(taskstats.register_request(family, possible_cpus(), 3))
        # The acknowledgement, or the OSError it carries. An exit may come first once
        # registered; then registering worked, and that one record is not counted.
        try:
            list(taskstats.parse_exits(sock.recv(65536), family))
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            raise OSError(e.errno, "listeners must run in the host's pid and user namespaces "
                          "(a container needs hostPID)") from None
        sock.settimeout(1.0)  # how often the thread checks whether to stop
    except BaseException:
        sock.close()
        raise
    return sock, family
