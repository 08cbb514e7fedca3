"""cgroup v1: one directory per cell in each hierarchy that is mounted and writable.

Each of the memory, cpu, cpuacct, pids and freezer hierarchies is used when present, on its
own: a host without the pids hierarchy still gets memory and cpu limits, and ``supports``
says what is missing. v1 has no internal-process rule, so the cells' root is simply ``<own
cgroup (or the explicit root) in that hierarchy>/<root name>`` and nothing moves. Killing
freezes the cell (when the freezer hierarchy is there) so that nothing forks while every
listed process gets SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping

from procpilot.controller.isolation.base import (
    CPU_PERIOD_US,
    Cell,
    IsolationError,
    LimitKind,
    Limits,
    Notes,
    Reading,
    Usage,
    check_cell_name,
    enter_argv,
    kill_in_rounds,
    make_cell_dir,
    read,
    remove_dirs,
    subtree_procs,
    write,
)
from procpilot.core import cgroupfs

CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")  # the hierarchies cells use
_TICKS = os.sysconf("SC_CLK_TCK")
_UNLIMITED = "-1"


def limit_writes(limits: Limits, controllers: frozenset[str], memsw: bool
                 ) -> list[tuple[str, str, str, LimitKind | None]]:
    """(controller, file, content, kind) to write, in order, for the present hierarchies.

    Every limit file is written (-1: no limit) so a reused leftover keeps nothing. The
    memory+swap limit must never be below the memory limit, so it is lifted first and set
    last. Swap alone cannot be expressed in v1 (memsw is memory + swap): without a memory
    limit a swap limit is not enforced.
    """
    writes: list[tuple[str, str, str, LimitKind | None]] = []
    if "memory" in controllers:
        if memsw:
            writes.append(("memory", "memory.memsw.limit_in_bytes", _UNLIMITED, None))
        writes += [
            ("memory", "memory.limit_in_bytes", _bytes(limits.memory), "memory"),
            ("memory", "memory.soft_limit_in_bytes", _bytes(limits.memory_high), "memory_high"),
        ]
        if memsw and limits.memory is not None and limits.swap is not None:
            writes.append(("memory", "memory.memsw.limit_in_bytes",
                           str(limits.memory + limits.swap), "swap"))
    if "cpu" in controllers:
        quota = _UNLIMITED if limits.cpu is None else str(
            cgroupfs.cpu_quota(limits.cpu, CPU_PERIOD_US))
        writes += [
            ("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US), None),
            ("cpu", "cpu.cfs_quota_us", quota, "cpu"),
        ]
    if "pids" in controllers:
        writes.append(("pids", "pids.max", cgroupfs.format_max(limits.tasks), "tasks"))
    return writes


def _bytes(value: int | None) -> str:
    return _UNLIMITED if value is None else str(value)


class Cgroup1Backend(Notes):
    """``roots`` maps each used controller to its cells' root directory (co-mounted
    controllers share one), which prepare() makes in a cgroup that exists."""

    name = "cgroup1"

    def __init__(self, roots: Mapping[str, str]) -> None:
        self.by_controller = dict(roots)
        super().__init__()
        self._created: set[str] = set()
        self._made: set[str] = set()  # roots prepare() created

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.by_controller.values())))

    @property
    def supports(self) -> frozenset[LimitKind]:
        have = self.by_controller
        kinds: set[LimitKind] = set()
        if "memory" in have:
            kinds |= {"memory", "memory_high"}
            if os.path.exists(os.path.join(have["memory"], "memory.memsw.limit_in_bytes")):
                kinds.add("swap")
        if "cpu" in have and os.path.exists(os.path.join(have["cpu"], "cpu.cfs_quota_us")):
            kinds.add("cpu")
        if "pids" in have:
            kinds.add("tasks")
        return frozenset(kinds)

    def prepare(self) -> None:
        """Make each root; drop hierarchies that fail; IsolationError if none work."""
        for controller, root in sorted(self.by_controller.items()):
            problem = None
            try:
                os.mkdir(root)  # never its parent: that cgroup must exist
                self._made.add(root)
            except FileExistsError:
                pass
            except OSError as e:
                problem = f"cannot create: {e.strerror}"
            if problem is None and not os.path.exists(os.path.join(root, "cgroup.procs")):
                problem = "no such cgroup"
            if problem:
                self.note(f"{controller} hierarchy not used: {root}: {problem}")
                del self.by_controller[controller]
        if not self.by_controller:
            raise IsolationError("cgroup1: no usable hierarchy: " + "; ".join(self._notes))
        missing = [c for c in CONTROLLERS if c not in self.by_controller]
        if missing:
            self.note(f"cgroup1 without the {', '.join(missing)} hierarchy")

    def create(self, name: str, limits: Limits) -> Cell:
        check_cell_name(name)
        dirs = {c: os.path.join(root, name) for c, root in self.by_controller.items()}
        made: list[str] = []
        try:
            for path in sorted(set(dirs.values())):
                make_cell_dir(path, _has_processes(path))
                made.append(path)
            memsw = "swap" in self.supports
            enforced: set[LimitKind] = set()
            for controller, file, content, kind in limit_writes(limits, frozenset(dirs), memsw):
                target = os.path.join(dirs[controller], file)
                try:
                    write(target, content)
                except OSError as e:
                    raise IsolationError(f"{target}: cannot write {content!r}: "
                                         f"{e.strerror}") from None
                if kind is not None:
                    enforced.add(kind)
        except IsolationError:
            remove_dirs(made)
            raise
        self._created.add(name)
        return Cgroup1Cell(dirs, frozenset(enforced) & limits.kinds())

    def leftovers(self) -> list[Cell]:
        names: set[str] = set()
        for root in self.roots:
            with contextlib.suppress(OSError):
                names |= {e.name for e in os.scandir(root) if e.is_dir()}
        cells: list[Cell] = []
        for name in sorted(names - self._created):
            dirs = {c: os.path.join(r, name) for c, r in self.by_controller.items()}
            cells.append(Cgroup1Cell({c: d for c, d in dirs.items() if os.path.isdir(d)},
                                     frozenset()))
        return cells

    def close(self) -> None:
        _remove_roots(self.roots)

    def abandon(self) -> None:
        _remove_roots(self._made)


def _remove_roots(roots: Iterable[str]) -> None:
    for root in roots:
        with contextlib.suppress(OSError):  # EBUSY while a cell is left
            os.rmdir(root)


def _has_processes(path: str) -> Callable[[], bool]:
    return lambda: bool(subtree_procs(path))


class Cgroup1Cell:
    def __init__(self, dirs: Mapping[str, str], enforced: frozenset[LimitKind]) -> None:
        self.by_controller = dict(dirs)
        self.enforced = enforced
        self.name = os.path.basename(next(iter(self.by_controller.values()), ""))

    @property
    def dirs(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.by_controller.values())))

    def _file(self, controller: str, name: str) -> str | None:
        directory = self.by_controller.get(controller)
        return os.path.join(directory, name) if directory else None

    def enter_argv(self) -> list[str]:
        return enter_argv([os.path.join(d, "cgroup.procs") for d in self.dirs])

    def pids(self) -> list[int]:
        found: set[int] = set()
        for directory in self.dirs:
            found.update(subtree_procs(directory))
        return sorted(found)

    def empty(self) -> bool:
        return not self.pids()

    def kill(self) -> bool:
        return kill_in_rounds(self.pids, self._freeze)

    def _freeze(self, frozen: bool) -> None:
        state = self._file("freezer", "freezer.state")
        if state:
            with contextlib.suppress(OSError):
                write(state, "FROZEN" if frozen else "THAWED")

    def remove(self) -> bool:
        if not self.empty():
            return False
        return remove_dirs(self.dirs)

    def usage(self) -> Usage:
        r = Reading()
        memory = self._count(r, "memory_bytes", "memory", "memory.usage_in_bytes")
        peak = self._count(r, "memory_peak_bytes", "memory", "memory.max_usage_in_bytes")
        anon = None
        if (stat := self._file("memory", "memory.stat")) is not None:
            anon = r.get("anon_bytes", stat,
                         lambda d: cgroupfs.parse_key(d, "memory.stat", "total_rss"))
        total = None
        times = None
        throttling = None
        if (path := self._file("cpuacct", "cpuacct.usage")) is None:
            for key in ("cpu_seconds", "cpu_user_seconds", "cpu_system_seconds"):
                r.lack(key, "no cpuacct hierarchy")
        else:
            total = r.get("cpu_seconds", path, cgroupfs.parse_cpuacct_usage)
            times = r.get("cpu_user_seconds", os.path.join(os.path.dirname(path), "cpuacct.stat"),
                          lambda d: cgroupfs.parse_cpuacct_stat(d, _TICKS))
            if times is None:
                r.lack("cpu_system_seconds", r.missing["cpu_user_seconds"])
        if (path := self._file("cpu", "cpu.stat")) is None:
            r.lack("cpu_throttled_seconds", "no cpu hierarchy")
        else:
            throttling = r.get("cpu_throttled_seconds", path, cgroupfs.parse_cpu_stat_v1)
        tasks = self._count(r, "tasks", "pids", "pids.current")
        if tasks is None and self.dirs and os.path.isdir(self.dirs[0]):
            tasks = len(self.pids())
            r.missing.pop("tasks")
        return Usage(
            memory_bytes=memory,
            anon_bytes=anon,
            memory_peak_bytes=peak,
            cpu_seconds=total,
            cpu_user_seconds=times.user_seconds if times else None,
            cpu_system_seconds=times.system_seconds if times else None,
            cpu_throttled_seconds=throttling.throttled_seconds if throttling else None,
            tasks=tasks,
            missing=r.missing,
        )

    def _count(self, r: Reading, key: str, controller: str, file: str) -> int | None:
        path = self._file(controller, file)
        if path is None:
            r.lack(key, f"no {controller} hierarchy")
            return None
        return r.get(key, path, lambda d: cgroupfs.parse_count(d, file))

    def oom_kills(self) -> int | None:
        path = self._file("memory", "memory.oom_control")
        if path is None:
            return None
        try:
            return cgroupfs.parse_oom_control(read(path)).oom_kill
        except (OSError, ValueError):
            return None
