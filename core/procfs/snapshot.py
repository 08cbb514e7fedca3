"""One pass over /proc: the snapshot every exporter view reads.

A scrape reads /proc/<pid>/stat once per process, which holds everything the per-scrape
views need (state, parentage, session, threads, CPU, faults, start time, memory). What
rarely changes (exe, user, cgroup owner, the open files limit) is read lazily and cached
per (pid, start time), so a long-lived process costs one stat read per scrape. cmdline is
read on request and not kept: it can be 32 KiB, and its one reader, group matching, keeps
its answer per process instead. The
per-process files only some groups want (status, io, the fd directory, smaps_rollup) are
read on request, for the processes asked about.

Processes vanish at any moment; a read that fails because of that, a permission error or
a file that does not parse skips that one process (or that one file of it) and is counted
in the snapshot's errors, never raised.
"""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from procpilot.core.owner import Owner, cgroup_path, owner_of
from procpilot.core.procfs.cgroups import read_cgroups
from procpilot.core.procfs.details import read_cmdline, read_exe, read_uid
from procpilot.core.procfs.files import read_file, read_growing
from procpilot.core.procfs.fs import FS
from procpilot.core.procfs.io import IoBytes, parse_io
from procpilot.core.procfs.limits import parse_open_files_limit
from procpilot.core.procfs.pidstat import Proc, parse_stat
from procpilot.core.procfs.smaps import Proportional, parse_smaps_rollup
from procpilot.core.procfs.status import Status, parse_status
from procpilot.core.procfs.tasks import count_fds, thread_states

T = TypeVar("T")
READ_ERROR_REASONS = ("vanished", "permission", "parse")
SMALL_LIMIT = 4096  # io, smaps_rollup and most status files (a long "Groups:" line aside)
UNKNOWN_OWNER = Owner("")


@dataclass(slots=True)
class ReadErrors:
    """Reads that failed in one snapshot: the process vanished, access was denied, or the
    content did not parse (or another I/O error)."""

    vanished: int = 0
    permission: int = 0
    parse: int = 0

    def counts(self) -> dict[str, int]:
        return {reason: getattr(self, reason) for reason in READ_ERROR_REASONS}

    def count(self, error: OSError | ValueError) -> None:
        """Count one failed read by its reason."""
        if isinstance(error, (FileNotFoundError, ProcessLookupError)):
            self.vanished += 1
        elif isinstance(error, PermissionError):
            self.permission += 1
        else:
            self.parse += 1


@dataclass(slots=True)  # one per process: keep it small
class _Details:
    """Slow-changing facts about one process, read on first use."""

    comm: str
    exe: str | None = None
    uid: int | None = None
    owner: Owner | None = None
    open_files_limit: int | None = None
    has_limit: bool = False  # open_files_limit was read (None then means unlimited)


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
        """argv (its first 32 KiB), read each time: callers keep what they derive."""
        return read_cmdline(self.reader.fs, proc.pid)

    def exe(self, proc: Proc) -> str:
        return self.reader.exe(proc)

    def user(self, proc: Proc) -> str:
        return self.reader.user(proc)

    def owner(self, proc: Proc) -> Owner:
        return self.reader.owner(proc, self.errors)

    def status(self, proc: Proc) -> Status | None:
        return self._read(proc, "status", parse_status)

    def io(self, proc: Proc) -> IoBytes | None:
        return self._read(proc, "io", parse_io)

    def proportional(self, proc: Proc) -> Proportional | None:
        return self._read(proc, "smaps_rollup", parse_smaps_rollup)

    def open_fds(self, proc: Proc) -> int | None:
        return counted(self.errors, count_fds, self.reader.fs, proc.pid)

    def open_files_limit(self, proc: Proc, open_fds: int) -> int | None:
        return self.reader.open_files_limit(proc, open_fds, self.errors)

    def thread_states(self, proc: Proc) -> list[str]:
        """The state of each thread; a single-threaded process's is its own (no read)."""
        if proc.num_threads <= 1:
            return [proc.state]
        return counted(self.errors, thread_states, self.reader.fs, proc.pid) or []

    def _read(self, proc: Proc, name: str, parse: Callable[[bytes], T],
              limit: int = SMALL_LIMIT) -> T | None:
        """One /proc/<pid>/<name> parsed, or None counted (without counted()'s extra calls:
        this runs for every grouped process at every scrape, up to three times)."""
        try:
            return parse(read_growing(f"{self.reader.fs.root}/{proc.pid}/{name}", limit))
        except (OSError, ValueError) as e:
            self.errors.count(e)
            return None


def _limit_in_tuple(data: bytes) -> tuple[int | None]:
    return (parse_open_files_limit(data),)


def counted(errors: ReadErrors, read: Callable[..., T], *args: object) -> T | None:
    """read(*args), or None with the failure counted by reason."""
    try:
        return read(*args)
    except (OSError, ValueError) as e:
        errors.count(e)
        return None


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
        return self.user_name(entry.uid)

    def user_name(self, uid: int) -> str:
        """The user name of uid, or the uid as text when it has none; cached."""
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name

    def owner(self, proc: Proc, errors: ReadErrors) -> Owner:
        """Whose process this is, from its cgroup path; cached, as a process rarely moves
        (a runtime that moves a child into its cgroup does so before exec, which changes
        comm and so refreshes the cache)."""
        entry = self._entry(proc)
        if entry.owner is None:
            cgroups = counted(errors, read_cgroups, self.fs, proc.pid)
            entry.owner = UNKNOWN_OWNER if cgroups is None else owner_of(cgroup_path(cgroups))
        return entry.owner

    def open_files_limit(self, proc: Proc, open_fds: int, errors: ReadErrors) -> int | None:
        """The soft limit on open files, None when unlimited or unreadable.

        Cached per process, and read again once open_fds reaches half the cached value: a
        process that raised its limit after we first looked is seen before the ratio
        matters. (A limit lowered later from outside, with prlimit, is seen only then.)
        """
        entry = self._entry(proc)
        limit = entry.open_files_limit
        if not entry.has_limit or (limit is not None and 2 * open_fds >= limit):
            path = self.fs.path(proc.pid, "limits")
            # wrapped in a tuple: None is an answer here (unlimited), not a failed read
            read = counted(errors, lambda: _limit_in_tuple(read_file(path)))
            if read is None:
                return limit
            entry.open_files_limit, entry.has_limit = read[0], True
        return entry.open_files_limit
