"""cgroup v2: one directory per cell under a root that has memory, cpu and pids enabled.

Setting up the root follows the no-internal-process rule: a cgroup can hand controllers to
its children (``cgroup.subtree_control``) only while no process sits in it, the root cgroup
excepted. So when cells go under our own cgroup (``own``), and own is not the root cgroup
and holds processes, those processes (us among them) first move into the leaf
``own/procpilot-supervisor``; an operator's explicit root is never rearranged that way. A
process that starts inside that leaf takes its parent as own, so a restarted controller
finds the same root. Controllers own does not offer are simply not enabled: the cells still
contain and kill, and ``supports`` says which limits the kernel enforces.
"""

from __future__ import annotations

import contextlib
import os

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
    procs,
    read,
    remove_dirs,
    subtree_procs,
    write,
)
from procpilot.core import cgroupfs

LEAF = "procpilot-supervisor"
CONTROLLERS = ("memory", "cpu", "pids")  # the ones cells use, in the order they are enabled
_KINDS: dict[str, tuple[LimitKind, ...]] = {
    "memory": ("memory", "memory_high", "swap"),
    "cpu": ("cpu",),
    "pids": ("tasks",),
}
_MOVE_ROUNDS = 20


def limit_writes(limits: Limits, controllers: frozenset[str]) -> list[tuple[str, str, LimitKind]]:
    """(file, content, kind) for every limit file of the enabled controllers.

    Every file is written, "max" where there is no limit, so a reused leftover cell keeps
    nothing of its previous limits.
    """
    writes: list[tuple[str, str, LimitKind]] = []
    if "memory" in controllers:
        writes += [
            ("memory.max", cgroupfs.format_max(limits.memory), "memory"),
            ("memory.high", cgroupfs.format_max(limits.memory_high), "memory_high"),
            ("memory.swap.max", cgroupfs.format_max(limits.swap), "swap"),
        ]
    if "cpu" in controllers:
        writes.append(("cpu.max", cgroupfs.format_cpu_max(limits.cpu, CPU_PERIOD_US), "cpu"))
    if "pids" in controllers:
        writes.append(("pids.max", cgroupfs.format_max(limits.tasks), "tasks"))
    return writes


def needs_leaf(own_is_root: bool, has_processes: bool, to_enable: frozenset[str]) -> bool:
    """Whether own's processes must move to a leaf before controllers can be enabled."""
    return bool(to_enable) and not own_is_root and has_processes


def _words(path: str) -> frozenset[str]:
    try:
        return frozenset(read(path).decode().split())
    except (OSError, UnicodeDecodeError):
        return frozenset()


def move_into_leaf(own: str) -> None:
    """Move every process of cgroup directory own into own/LEAF; OSError when one will not."""
    leaf = os.path.join(own, LEAF)
    os.makedirs(leaf, exist_ok=True)
    for _ in range(_MOVE_ROUNDS):  # processes may fork while we move them
        pids = procs(own)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                write(os.path.join(leaf, "cgroup.procs"), str(pid))
    raise OSError(f"{own}: processes keep appearing; could not empty it")


def enable(directory: str, wanted: frozenset[str]) -> tuple[frozenset[str], str | None]:
    """Enable the wanted controllers for directory's children: (enabled, why not all)."""
    control = os.path.join(directory, "cgroup.subtree_control")
    current = _words(control)
    missing = [c for c in CONTROLLERS if c in wanted and c not in current]
    if not missing:
        return wanted, None
    try:
        write(control, " ".join("+" + c for c in missing))
        return wanted, None
    except OSError as e:
        reason = f"{control}: cannot enable {' '.join(missing)}: {e.strerror or e}"
    enabled = set(current & wanted)
    for controller in missing:  # keep those that work alone
        try:
            write(control, "+" + controller)
            enabled.add(controller)
        except OSError:
            pass
    return frozenset(enabled), reason


class Cgroup2Backend(Notes):
    """Cells are directories under root, which prepare() makes in the existing cgroup
    parent. ``may_move``: parent is our own cgroup, whose processes may move into LEAF; an
    operator's explicit root is never rearranged."""

    name = "cgroup2"

    def __init__(self, root: str, parent: str, may_move: bool = True) -> None:
        self.root = root
        self.parent = parent
        self.may_move = may_move
        self.controllers: frozenset[str] = frozenset()
        super().__init__()
        self._created: set[str] = set()
        self._made = False  # prepare() created the root

    @property
    def roots(self) -> tuple[str, ...]:
        return (self.root,)

    @property
    def supports(self) -> frozenset[LimitKind]:
        kinds = {k for c in self.controllers for k in _KINDS[c]}
        if "memory" in self.controllers and not os.path.exists(
                os.path.join(self.root, "memory.swap.max")):
            kinds.discard("swap")  # no swap accounting (swapaccount=0)
        return frozenset(kinds)

    def prepare(self) -> None:
        """Make the root and enable what controllers we can; IsolationError when no root."""
        self._prepare_parent()
        try:
            os.mkdir(self.root)  # never the parent: that cgroup must exist
            self._made = True
        except FileExistsError:
            pass
        except OSError as e:
            raise IsolationError(f"{self.root}: cannot create: {e.strerror}") from None
        if not os.path.exists(os.path.join(self.root, "cgroup.procs")):
            raise IsolationError(f"{self.root}: not a cgroup2 directory (no cgroup.procs)")
        offered = _words(os.path.join(self.root, "cgroup.controllers"))
        self.controllers, why = enable(self.root, offered & frozenset(CONTROLLERS))
        if why:
            self.note(why)
        absent = [c for c in CONTROLLERS if c not in self.controllers]
        if absent:
            self.note(f"{self.root}: no {', '.join(absent)} controller for cells: limits of "
                      f"kinds {', '.join(k for c in absent for k in _KINDS[c])} are not "
                      f"kernel-enforced")

    def _prepare_parent(self) -> None:
        """Enable in parent the controllers it offers, so the root can have them."""
        parent = self.parent
        offered = _words(os.path.join(parent, "cgroup.controllers")) & frozenset(CONTROLLERS)
        to_enable = offered - _words(os.path.join(parent, "cgroup.subtree_control"))
        parent_is_root = not os.path.exists(os.path.join(parent, "cgroup.type"))
        if needs_leaf(parent_is_root, bool(procs(parent)), to_enable):
            if not self.may_move:
                self.note(f"{parent}: has processes, so no controller can be enabled for "
                          f"its children (they are not moved out of an explicit root)")
                return
            try:
                move_into_leaf(parent)
            except OSError as e:
                self.note(f"{parent}: cannot move its processes into {LEAF}: {e}")
                return
            self.note(f"moved the processes of {parent} into {LEAF} to enable controllers")
        _, why = enable(parent, offered)
        if why:
            self.note(why)

    def create(self, name: str, limits: Limits) -> Cell:
        check_cell_name(name)
        path = os.path.join(self.root, name)
        make_cell_dir(path, lambda: bool(subtree_procs(path)))
        enforced: set[LimitKind] = set()
        for file, content, kind in limit_writes(limits, self.controllers):
            try:
                write(os.path.join(path, file), content)
            except FileNotFoundError:
                if kind == "swap":  # no swap accounting: not enforced, not an error
                    continue
                remove_dirs([path])
                raise IsolationError(f"{path}/{file}: not present") from None
            except OSError as e:
                remove_dirs([path])
                raise IsolationError(f"{path}/{file}: cannot write {content!r}: "
                                     f"{e.strerror}") from None
            enforced.add(kind)
        self._created.add(name)
        return Cgroup2Cell(path, frozenset(enforced) & limits.kinds())

    def leftovers(self) -> list[Cell]:
        try:
            names = sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        except OSError:
            return []
        return [Cgroup2Cell(os.path.join(self.root, n), frozenset())
                for n in names if n not in self._created and n != LEAF]

    def close(self) -> None:
        with contextlib.suppress(OSError):  # EBUSY while a cell is left
            os.rmdir(self.root)

    def abandon(self) -> None:
        if self._made:
            self.close()


class Cgroup2Cell:
    def __init__(self, path: str, enforced: frozenset[LimitKind]) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self.enforced = enforced

    @property
    def dirs(self) -> tuple[str, ...]:
        return (self.path,)

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def enter_argv(self) -> list[str]:
        return enter_argv([self._file("cgroup.procs")])

    def pids(self) -> list[int]:
        return subtree_procs(self.path)  # sub-cgroups' too, as cgroup.kill and populated

    def empty(self) -> bool:
        try:
            return not cgroupfs.parse_cgroup_events(read(self._file("cgroup.events"))).populated
        except FileNotFoundError:
            return not os.path.isdir(self.path) or not self.pids()
        except (OSError, ValueError):
            return not self.pids()

    def kill(self) -> bool:
        try:
            write(self._file("cgroup.kill"), "1")  # Linux 5.14+: the kernel kills it all
            return True
        except FileNotFoundError:
            if not os.path.isdir(self.path):
                return True
        except OSError:
            pass
        return kill_in_rounds(self.pids, self._freeze)

    def _freeze(self, frozen: bool) -> None:
        with contextlib.suppress(OSError):  # no v2 freezer (before 5.2), or gone
            write(self._file("cgroup.freeze"), "1" if frozen else "0")

    def remove(self) -> bool:
        if not self.empty():
            return False
        return remove_dirs([self.path])

    def usage(self) -> Usage:
        r = Reading()
        memory = r.get("memory_bytes", self._file("memory.current"),
                       lambda d: cgroupfs.parse_count(d, "memory.current"))
        anon = r.get("anon_bytes", self._file("memory.stat"),
                     lambda d: cgroupfs.parse_key(d, "memory.stat", "anon"))
        peak = r.get("memory_peak_bytes", self._file("memory.peak"),  # Linux 5.19+
                     lambda d: cgroupfs.parse_count(d, "memory.peak"))
        cpu = r.get("cpu_seconds", self._file("cpu.stat"), cgroupfs.parse_cpu_stat)
        tasks = r.get("tasks", self._file("pids.current"),
                      lambda d: cgroupfs.parse_count(d, "pids.current"))
        if tasks is None and os.path.isdir(self.path):
            tasks = len(self.pids())
            r.missing.pop("tasks")
        throttled = None
        if cpu is not None:
            if cpu.throttling is not None:
                throttled = cpu.throttling.throttled_seconds
            else:
                r.lack("cpu_throttled_seconds", f"{self.path}: no cpu controller")
        else:
            for key in ("cpu_user_seconds", "cpu_system_seconds", "cpu_throttled_seconds"):
                r.lack(key, r.missing["cpu_seconds"])
        return Usage(
            memory_bytes=memory,
            anon_bytes=anon,
            memory_peak_bytes=peak,
            cpu_seconds=cpu.usage_seconds if cpu else None,
            cpu_user_seconds=cpu.user_seconds if cpu else None,
            cpu_system_seconds=cpu.system_seconds if cpu else None,
            cpu_throttled_seconds=throttled,
            tasks=tasks,
            missing=r.missing,
        )

    def oom_kills(self) -> int | None:
        try:
            return cgroupfs.parse_memory_events(read(self._file("memory.events"))).oom_kill
        except (OSError, ValueError):
            return None
