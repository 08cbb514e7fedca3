"""One pass over /proc: the snapshot every exporter view reads.

A scrape reads /proc/<pid>/stat once per process, which holds everything the per-scrape
views need (state, parentage, session, threads, CPU, start time, RSS). What rarely changes
(cmdline, exe, owner) is read lazily and cached per (pid, start time), so a long-lived
process costs one stat read per scrape.

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

from procpilot.core.procfs.details import read_cmdline, read_exe, read_uid
from procpilot.core.procfs.fs import FS
from procpilot.core.procfs.pidstat import Proc, parse_stat


class ReadErrors(NamedTuple):
    vanished: int
    permission: int
    parse: int


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
    """Reads snapshots from a procfs and caches per-process details across them."""

    def __init__(self, fs: FS) -> None:
        self.fs = fs
        self._details: dict[tuple[int, int], _Details] = {}
        self._parsed: dict[bytes, Proc] = {}  # last snapshot's stat lines and their records
        self._users: dict[int, str] = {}

    def snapshot(self) -> Snapshot:
        """Read /proc/<pid>/stat for every process, once.

        All lines are read first and parsed after (the parser stays hot in the CPU cache
        instead of alternating with syscalls). A line byte-for-byte equal to one of the
        previous snapshot describes the same process in the same state, so its parsed record
        is reused: on a host of mostly idle processes, most lines are not parsed at all.
        """
        root = self.fs.root
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
        fs = self.fs
        previous = self._parsed
        parsed: dict[bytes, Proc] = {}
        procs: dict[int, Proc] = {}
        failed = 0
        for data in lines:
            proc = previous.get(data)
            if proc is None:
                try:
                    proc = parse_stat(data, fs)
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
        entry = self._entry(proc)
        if entry.cmdline is None:
            entry.cmdline = read_cmdline(self.fs, proc.pid)
        return entry.cmdline

    def exe(self, proc: Proc) -> str:
        entry = self._entry(proc)
        if entry.exe is None:
            entry.exe = read_exe(self.fs, proc.pid)
        return entry.exe

    def user(self, proc: Proc) -> str:
        """Owner's user name, or the uid as text when it has no name; empty when gone."""
        entry = self._entry(proc)
        if entry.uid is None:
            entry.uid = read_uid(self.fs, proc.pid)
            if entry.uid is None:
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
