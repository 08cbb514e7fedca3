"""The isolation protocol (limits, cells, backends) and the file plumbing backends share.

A *cell* is the cgroup of one supervised instance (on cgroup v1, one directory per
hierarchy). Everything here is synchronous and short: a file read or write is a few
microseconds on cgroupfs, and nothing sleeps except :func:`kill_and_wait` and
:func:`kill_and_remove`, which are for callers outside an event loop. An asyncio caller
calls :meth:`Cell.kill` (one bounded step) and polls :meth:`Cell.empty` on its own timer.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar
from urllib.parse import quote

from procpilot.core import cgroupfs
from procpilot.core.procfs.files import READ_LIMIT, read_file

LimitKind = Literal["memory", "memory_high", "swap", "cpu", "tasks"]
LIMIT_KINDS: tuple[LimitKind, ...] = ("memory", "memory_high", "swap", "cpu", "tasks")
CPU_PERIOD_US = 100_000  # CFS period for cpu limits, v1 and v2 (the kernel default)
# The smallest cpu limit: the kernel's smallest quota per period. A smaller one would be
# raised to it silently, so it is refused instead.
MIN_CPU_CORES = cgroupfs.MIN_CPU_QUOTA_US / CPU_PERIOD_US
# Exit status of the enter prefix when it cannot move itself into the cell. Not 126/127,
# which a shell returns when the exec that follows fails; like env(1) and timeout(1), 125.
ENTER_FAILED = 125
# Moves the shell into each cgroup.procs file given before "--" ("0" means the writer;
# echo is a shell builtin, so the writer is this shell), then execs the rest.
ENTER_SCRIPT = (
    'while [ "$1" != -- ]; do echo 0 >"$1" ||'
    f' {{ echo "procpilot: cannot move into cgroup ${{1%/*}}" >&2; exit {ENTER_FAILED}; }};'
    ' shift; done; shift; exec "$@"'
)
_CELL_NAME = re.compile(r"[A-Za-z0-9_%~-][A-Za-z0-9_.%~-]{0,199}")
_NAME_LIMIT = 200  # bytes of a directory name we make; NAME_MAX is 255
T = TypeVar("T")


PROCS_LIMIT = 1 << 20  # cgroup.procs of a busy cell holds many pids


class IsolationError(Exception):
    """A backend cannot be used or a cell cannot be made; str() says exactly why."""


@dataclass(frozen=True)
class Limits:
    """Kernel limits for one cell; None means no limit of that kind."""

    memory: int | None = None  # bytes: hard limit, the OOM killer acts beyond it
    memory_high: int | None = None  # bytes: v2 memory.high (throttle), v1 soft limit (reclaim)
    swap: int | None = None  # bytes of swap on top of memory
    cpu: float | None = None  # cores, e.g. 0.5
    tasks: int | None = None  # processes and threads

    def __post_init__(self) -> None:
        for kind in ("memory", "memory_high", "swap"):
            value = getattr(self, kind)
            if value is not None and value < 0:
                raise ValueError(f"{kind} limit must be >= 0 bytes, got {value}")
        if self.cpu is not None:
            check_cores(self.cpu)
        if self.tasks is not None and self.tasks < 1:
            raise ValueError(f"tasks limit must be >= 1, got {self.tasks}")

    def kinds(self) -> frozenset[LimitKind]:
        """The kinds of limit that are set."""
        return frozenset(k for k in LIMIT_KINDS if getattr(self, k) is not None)


def check_cores(cores: float) -> float:
    """cores, when the kernel can keep it as given as a cpu limit; else ValueError saying so."""
    if not (math.isfinite(cores) and cores >= MIN_CPU_CORES):
        raise ValueError(f"{cores:g} cores: expected a finite number of cores, at least "
                         f"{MIN_CPU_CORES:g} (the kernel's smallest CPU quota is "
                         f"{cgroupfs.MIN_CPU_QUOTA_US // 1000} ms per "
                         f"{CPU_PERIOD_US // 1000} ms)")
    return cores


@dataclass(frozen=True)
class Usage:
    """What a cell used, as far as its backend can tell; ``missing`` says why a field is None.

    ``memory_bytes`` is the cgroup's charge, which includes page cache (unlike RSS);
    ``anon_bytes`` its anonymous memory (memory.stat anon, v1 total_rss), the part of it that
    is like RSS: no page cache, though a page shared by two processes counts once.
    ``tasks`` counts threads where the pids controller is there, else processes.
    """

    memory_bytes: int | None = None
    anon_bytes: int | None = None
    memory_peak_bytes: int | None = None
    cpu_seconds: float | None = None
    cpu_user_seconds: float | None = None
    cpu_system_seconds: float | None = None
    cpu_throttled_seconds: float | None = None  # a counter, like the cpu times
    tasks: int | None = None
    missing: Mapping[str, str] = field(default_factory=dict)


class Cell(Protocol):
    """One instance's cgroup. No method raises because the cell vanished."""

    @property
    def name(self) -> str: ...

    @property
    def dirs(self) -> tuple[str, ...]:
        """Its directories (one per v1 hierarchy); empty without a cgroup."""
        ...

    @property
    def enforced(self) -> frozenset[LimitKind]:
        """The limits of this cell that the kernel enforces."""
        ...

    def enter_argv(self) -> list[str]:
        """An argv prefix that moves the exec'd process into the cell, then execs the rest."""
        ...

    def pids(self) -> list[int]: ...

    def kill(self) -> bool:
        """SIGKILL everything in the cell, in one bounded step (no sleeping).

        True when nothing can have escaped: every process is killed or dying, and empty()
        turns true once they are gone. False when that cannot be guaranteed (no cgroup,
        or processes kept appearing); call again.
        """
        ...

    def empty(self) -> bool: ...

    def remove(self) -> bool:
        """Remove the cell's directories if it is empty; True when they are gone."""
        ...

    def usage(self) -> Usage: ...

    def oom_kills(self) -> int | None:
        """Processes the OOM killer killed in this cell; None without memory accounting."""
        ...


class Notes:
    """Why a backend was chosen and what it lacks, for the start-up log line."""

    def __init__(self) -> None:
        self._notes: list[str] = []

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(self._notes)

    def note(self, text: str) -> None:
        self._notes.append(text)


class Backend(Protocol):
    @property
    def name(self) -> str:
        """``cgroup2``, ``cgroup1`` or ``none``."""
        ...

    @property
    def roots(self) -> tuple[str, ...]:
        """Directories the cells live in (one per v1 hierarchy)."""
        ...

    @property
    def supports(self) -> frozenset[LimitKind]:
        """Limit kinds the kernel can enforce for cells of this backend."""
        ...

    @property
    def notes(self) -> tuple[str, ...]:
        """Why this backend was chosen and what it cannot do, for logs."""
        ...

    def create(self, name: str, limits: Limits) -> Cell:
        """Make cell ``name`` with limits; IsolationError when that fails.

        A leftover empty cell of the same name is reused (its limits rewritten); one with
        processes in it is refused.
        """
        ...

    def leftovers(self) -> list[Cell]:
        """Cells under the root that this object did not create (a crashed owner's)."""
        ...

    def close(self) -> None:
        """Remove the root if no cell is left in it (best effort)."""
        ...

    def abandon(self) -> None:
        """After a start that failed: remove the roots prepare() made, if still empty. A root
        that was there before stays: it may be a running owner's."""
        ...


def safe_name(text: str) -> str:
    """text as one directory name: bytes outside ``A-Za-z0-9_.-~`` become ``%XX``.

    Percent-encoding is reversible (urllib.parse.unquote) and never yields '/', '.' or '..'
    on its own. Past 200 bytes the name is cut and ends in ``~`` and 16 hex digits of a
    SHA-256 of the text, so long identities stay distinct.
    """
    if not text:
        raise ValueError("an empty identity has no name")
    name = quote(text, safe="")
    if name in (".", ".."):
        name = name.replace(".", "%2E")
    if len(name) > _NAME_LIMIT:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        name = name[: _NAME_LIMIT - 17] + "~" + digest
    return name


def root_name(identity: str) -> str:
    """Directory name of one owner's cells root: ``procpilot-`` and the escaped identity.

    The controller passes the absolute path of its control socket, procpilot-run passes
    ``run``: an absolute path always encodes to ``procpilot-%2F...``, so no controller's root
    can be procpilot-run's.
    """
    return "procpilot-" + safe_name(identity)


def check_cell_name(name: str) -> None:
    if not _CELL_NAME.fullmatch(name):
        raise ValueError(f"{name!r}: a cell name is 1-200 of A-Za-z0-9_.%~- and starts with "
                         f"no '.'")


def read(path: str, limit: int = READ_LIMIT) -> bytes:
    """A cgroup interface file: generated whole at open, like a /proc file. (The buffer is
    allocated at its full size, so only cgroup.procs gets a large one.)"""
    return read_file(path, limit)


def write(path: str, text: str) -> None:
    """One write(2) of text to an existing file; the kernel's refusal is the OSError."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class Reading:
    """Reads and parses counters, remembering why each one it could not get is missing."""

    def __init__(self) -> None:
        self.missing: dict[str, str] = {}

    def get(self, key: str, path: str, parse: Callable[[bytes], T]) -> T | None:
        try:
            return parse(read(path))
        except FileNotFoundError:
            self.missing[key] = f"{path}: not present"
        except OSError as e:
            self.missing[key] = f"{path}: {e.strerror or e}"
        except ValueError as e:
            self.missing[key] = str(e)
        return None

    def lack(self, key: str, why: str) -> None:
        self.missing[key] = why


def procs(directory: str) -> list[int]:
    """The pids in cgroup directory's own cgroup.procs; none when it cannot be read."""
    try:
        return cgroupfs.parse_procs(read(os.path.join(directory, "cgroup.procs"), PROCS_LIMIT))
    except (OSError, ValueError):
        return []


def subtree_procs(top: str) -> list[int]:
    """The pids in cgroup directory top and in every cgroup below it.

    A cell's process may make sub-cgroups (a nested procpilot-run makes its own cells), and
    whatever is in them is the cell's too: to kill, to wait for, to keep the cell busy.
    A vanished directory has none.
    """
    try:
        # cgroupfs counts a directory's subdirectories in its links (2 + n), as other file
        # systems do: a cell with none, the usual case, costs one stat, not a walk.
        if os.stat(top).st_nlink <= 2:
            return procs(top)
    except OSError:
        return []
    found: set[int] = set()
    for here, _, _ in os.walk(top):
        found.update(procs(here))
    return sorted(found)


def enter_argv(procs_files: Iterable[str]) -> list[str]:
    return ["/bin/sh", "-c", ENTER_SCRIPT, "procpilot-enter", *procs_files, "--"]


def make_cell_dir(path: str, has_processes: Callable[[], bool]) -> None:
    """mkdir path; an existing empty cgroup directory is taken over, anything else refused."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if not os.path.isdir(path) or not os.path.exists(os.path.join(path, "cgroup.procs")):
            raise IsolationError(f"{path}: exists and is not a cgroup") from None
        if has_processes():
            raise IsolationError(f"{path}: a cell of that name exists and has processes in it") \
                from None
    except OSError as e:
        raise IsolationError(f"{path}: cannot create: {e.strerror}") from None


def remove_dirs(dirs: Iterable[str]) -> bool:
    """rmdir each cgroup directory, sub-cgroups first; True when all are gone."""
    gone = True
    for top in dirs:
        for here, _, _ in os.walk(top, topdown=False):  # children before their parent
            try:
                os.rmdir(here)
            except FileNotFoundError:
                pass
            except OSError:  # EBUSY: a process is (again) inside
                gone = False
    return gone


def kill_in_rounds(list_pids: Callable[[], Iterable[int]], freeze: Callable[[bool], None],
                   rounds: int = 4) -> bool:
    """SIGKILL every listed process, frozen so none can fork meanwhile; repeat while new ones
    appear. True once a round lists only processes already killed (they may still be exiting).

    The freeze is not waited for: a process caught mid-fork shows up in the next round.
    """
    killed: set[int] = set()
    for _ in range(rounds):
        freeze(True)
        try:
            pids = set(list_pids())
            for pid in pids - killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            freeze(False)
        if pids <= killed:
            return True
        killed |= pids
    return False


def kill_and_wait(cell: Cell, timeout: float = 5.0, step: float = 0.01) -> bool:
    """Kill the cell and wait until it is empty; True when it is. Blocks: not for a loop."""
    return _kill_until(cell, cell.empty, timeout, step)


def kill_and_remove(cell: Cell, timeout: float = 5.0, step: float = 0.01) -> bool:
    """Kill the cell until it is empty and removed; True when it is gone. Blocks.

    Removal is retried too, not only the wait for empty: a cgroup can refuse rmdir (EBUSY)
    for a moment after its last process left, while the kernel still tears that one down.
    """
    return _kill_until(cell, cell.remove, timeout, step)


def _kill_until(cell: Cell, done: Callable[[], bool], timeout: float, step: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        cell.kill()
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
