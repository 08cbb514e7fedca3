"""One pass over /proc: the snapshot every collector reads.

This is the only module that touches procfs. A scrape reads /proc/<pid>/stat once per
process, which holds everything the per-scrape views need (state, parentage, session,
threads, CPU, start time, RSS). What rarely changes (cmdline, exe, owner) is read lazily
and cached per (pid, start time), so a long-lived process costs one stat read per scrape.

Processes vanish at any moment; a read that fails because of that, a permission error or
a line that does not parse skips that one process and is counted, never raised.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

PF_KTHREAD = 0x00200000  # include/linux/sched.h: the task is a kernel thread
CMDLINE_LIMIT = 32 * 1024  # bytes of cmdline kept for matching and labels


class Proc(NamedTuple):
    """One process as /proc/<pid>/stat shows it, in base units."""

    pid: int
    comm: str
    state: str  # the one-letter state code
    ppid: int
    pgrp: int
    session: int
    flags: int
    utime: float  # seconds in user mode
    stime: float  # seconds in kernel mode
    num_threads: int
    start_ticks: int  # clock ticks after boot; with pid it names the process uniquely
    start_time: float  # unix seconds
    rss_bytes: int
    key: tuple[int, int]  # (pid, start ticks): an identity that survives pid reuse

    @property
    def is_kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)


class ReadErrors(NamedTuple):
    vanished: int
    permission: int
    parse: int


_new_proc = tuple.__new__  # positional construction, skipping NamedTuple's Python-level __new__


def parse_stat(data: bytes, boot_time: float, ticks: int, page_size: int) -> Proc:
    """Parse one /proc/<pid>/stat line.

    comm sits between the first " (" and the last ") " and may itself hold spaces,
    parentheses or newlines, so the fields are split only after the last ") ".
    This runs once per process per scrape, hence the plain, positional style.
    Raises ValueError when the line is not a stat line.
    """
    head, found_close, tail = data.rpartition(b") ")
    pid_text, found_open, comm = head.partition(b" (")
    if not (found_close and found_open):
        raise ValueError("no '(comm)' in stat line")
    f = tail.split(None, 22)  # f[0] is field 3 (state); field n of proc(5) is f[n - 3]
    if len(f) < 22:
        raise ValueError(f"stat line has {len(f) + 2} fields, want at least 24")
    pid = int(pid_text)
    start = int(f[19])
    return _new_proc(
        Proc,
        (
            pid,
            comm.decode("utf-8", "replace"),
            f[0].decode("ascii", "replace"),
            int(f[1]),  # ppid
            int(f[2]),  # pgrp
            int(f[3]),  # session
            int(f[6]),  # flags
            int(f[11]) / ticks,  # utime
            int(f[12]) / ticks,  # stime
            int(f[17]),  # num_threads
            start,
            boot_time + start / ticks,
            max(int(f[21]), 0) * page_size,  # rss
            (pid, start),
        ),
    )


@dataclass(slots=True)  # one per process: keep it small
class _Details:
    """Slow-changing facts about one process, read on first use."""

    comm: str
    cmdline: tuple[str, ...] | None = None
    exe: str | None = None
    uid: int | None = None


@dataclass
class Snapshot:
    """All processes at one instant, plus lazy access to their details."""

    procs: dict[int, Proc]
    taken_at: float
    errors: ReadErrors
    reader: ProcReader = field(repr=False)

    def __iter__(self) -> Iterator[Proc]:
        return iter(self.procs.values())

    def cmdline(self, proc: Proc) -> tuple[str, ...]:
        return self.reader.cmdline(proc)

    def exe(self, proc: Proc) -> str:
        return self.reader.exe(proc)

    def user(self, proc: Proc) -> str:
        return self.reader.user(proc)


class ProcReader:
    """Reads snapshots from a procfs root and caches per-process details across them."""

    def __init__(self, root: str = "/proc") -> None:
        self.root = root.rstrip("/") or "/"
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        self.boot_time = self._read_boot_time()
        self._details: dict[tuple[int, int], _Details] = {}
        self._parsed: dict[bytes, Proc] = {}  # last snapshot's stat lines and their records
        self._users: dict[int, str] = {}

    def _read_boot_time(self) -> float:
        try:
            with open(f"{self.root}/stat", "rb") as f:
                for line in f:
                    if line.startswith(b"btime "):
                        return float(line.split()[1])
        except OSError:
            pass
        raise OSError(f"cannot read btime from {self.root}/stat: is {self.root} a procfs?")

    def snapshot(self) -> Snapshot:
        """Read /proc/<pid>/stat for every process, once.

        All lines are read first and parsed after (the parser stays hot in the CPU cache
        instead of alternating with syscalls). A line byte-for-byte equal to one of the
        previous snapshot describes the same process in the same state, so its parsed record
        is reused: on a host of mostly idle processes, most lines are not parsed at all.
        """
        root = self.root
        lines: list[bytes] = []
        vanished = permission = unreadable = 0
        taken_at = time.time()
        for name in os.listdir(root):
            if not name.isdigit():
                continue
            try:
                fd = os.open(f"{root}/{name}/stat", os.O_RDONLY)
                try:
                    lines.append(os.read(fd, 4096))
                finally:
                    os.close(fd)
            except (FileNotFoundError, ProcessLookupError):
                vanished += 1
            except PermissionError:
                permission += 1
            except OSError:
                unreadable += 1
        procs, unparsable = self._parse_all(lines)
        self._forget_gone(procs)
        errors = ReadErrors(vanished, permission, unreadable + unparsable)
        return Snapshot(procs, taken_at, errors, self)

    def _parse_all(self, lines: list[bytes]) -> tuple[dict[int, Proc], int]:
        boot, ticks, page = self.boot_time, self.ticks, self.page_size
        previous = self._parsed
        parsed: dict[bytes, Proc] = {}
        procs: dict[int, Proc] = {}
        failed = 0
        for data in lines:
            proc = previous.get(data)
            if proc is None:
                try:
                    proc = parse_stat(data, boot, ticks, page)
                except ValueError:
                    failed += 1
                    continue
            parsed[data] = proc
            procs[proc.pid] = proc
        self._parsed = parsed
        return procs, failed

    def _forget_gone(self, procs: dict[int, Proc]) -> None:
        details = self._details
        if details:
            self._details = {
                k: v for k, v in details.items() if (p := procs.get(k[0])) and p.start_ticks == k[1]
            }

    def _entry(self, proc: Proc) -> _Details:
        # exec keeps pid and start time but changes comm: treat a new comm as a new process.
        entry = self._details.get(proc.key)
        if entry is None or entry.comm != proc.comm:
            entry = self._details[proc.key] = _Details(proc.comm)
        return entry

    def cmdline(self, proc: Proc) -> tuple[str, ...]:
        """argv as strings (first 32 KiB); empty for kernel threads, zombies and on error."""
        entry = self._entry(proc)
        if entry.cmdline is None:
            try:
                with open(f"{self.root}/{proc.pid}/cmdline", "rb") as f:
                    raw = f.read(CMDLINE_LIMIT)
            except OSError:
                raw = b""
            entry.cmdline = tuple(
                a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0") if raw
            )
        return entry.cmdline

    def exe(self, proc: Proc) -> str:
        """Path of the executable; empty when unreadable (kernel threads, other users)."""
        entry = self._entry(proc)
        if entry.exe is None:
            try:
                entry.exe = os.readlink(f"{self.root}/{proc.pid}/exe")
            except OSError:
                entry.exe = ""
        return entry.exe

    def user(self, proc: Proc) -> str:
        """Owner's user name, or the uid as text when it has no name (or is unknown)."""
        entry = self._entry(proc)
        if entry.uid is None:
            try:
                entry.uid = os.stat(f"{self.root}/{proc.pid}").st_uid
            except OSError:
                return ""
        uid = entry.uid
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name
