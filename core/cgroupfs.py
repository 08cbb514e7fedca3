"""Parsers of cgroup interface files (v1 and v2) and of the files that locate cgroups.

Pure functions from a file's content (bytes or str) to typed values, so every format is
tested with literal text and the isolation backends keep their I/O to open/read/write. Times
come out in seconds and sizes in bytes whatever unit the kernel file uses. Input that is not
the expected format raises ValueError naming the file, never anything else: a caller that
reads a cgroup which vanished or changed under it handles one exception type.

Where to find the hierarchies: /proc/self/mountinfo lists the mounts (v2 is fstype
``cgroup2``, each v1 hierarchy is fstype ``cgroup`` with its controllers among the super
options), and /proc/<pid>/cgroup gives a process's path in each hierarchy, relative to the
root of that hierarchy as its cgroup namespace sees it. :func:`cgroup_dir` joins the two.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import NamedTuple

Data = bytes | str

# v1 controllers a kernel may mount as hierarchies; other super options (rw, relatime,
# name=..., clone_children, ...) are not controllers.
V1_CONTROLLERS = frozenset({
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "misc",
    "net_cls", "net_prio", "perf_event", "pids", "rdma",
})
_COUNT = re.compile(r"[0-9]+")
_MOUNTINFO_ESCAPE = re.compile(r"\\([0-7]{3})")


def _text(data: Data, name: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{name}: not UTF-8 text") from None


def _count(word: str, name: str) -> int:
    if not _COUNT.fullmatch(word):
        raise ValueError(f"{name}: expected a non-negative integer, got {word!r}")
    return int(word)


def parse_keyed(data: Data, name: str) -> dict[str, int]:
    """Lines of ``key value`` (memory.events, cpu.stat, cgroup.events, oom_control...)."""
    values: dict[str, int] = {}
    for number, line in enumerate(_text(data, name).splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2:
            raise ValueError(f"{name}: line {number}: expected 'key value', got {line!r}")
        values[words[0]] = _count(words[1], f"{name}: line {number}")
    return values


def parse_key(data: Data, name: str, key: str) -> int:
    """One value of a ``key value`` file (memory.stat's anon, say); ValueError when absent.

    Stops at that line: memory.stat has dozens, read at every measurement of every cell.
    """
    prefix = key + " "
    for number, line in enumerate(_text(data, name).splitlines(), 1):
        if line.startswith(prefix):
            return _count(line[len(prefix):].strip(), f"{name}: line {number}")
    raise ValueError(f"{name}: no {key} line")


def _require(values: dict[str, int], keys: Iterable[str], name: str) -> None:
    missing = [k for k in keys if k not in values]
    if missing:
        raise ValueError(f"{name}: missing {', '.join(missing)}")


def parse_count(data: Data, name: str) -> int:
    """A file holding one non-negative integer (memory.current, pids.current, ...)."""
    return _count(_text(data, name).strip(), name)


def parse_max(data: Data, name: str) -> int | None:
    """A v2 limit file (memory.max, memory.high, pids.max...): ``max`` is None, no limit."""
    text = _text(data, name).strip()
    return None if text == "max" else _count(text, name)


def format_max(value: int | None) -> str:
    """What to write to a v2 limit file: bytes or a count, ``max`` for no limit."""
    return "max" if value is None else str(value)


MIN_CPU_QUOTA_US = 1000  # the kernel refuses a smaller CFS quota


def cpu_quota(cores: float, period_us: int) -> int:
    """CFS quota in microseconds per period for a number of cores (kernel minimum 1 ms;
    callers refuse smaller limits, see isolation.MIN_CPU_CORES)."""
    return max(round(cores * period_us), MIN_CPU_QUOTA_US)


def parse_cpu_max(data: Data) -> tuple[int | None, int]:
    """v2 cpu.max, ``quota period`` in microseconds: (None, period) when unlimited."""
    words = _text(data, "cpu.max").split()
    if len(words) != 2:
        raise ValueError(f"cpu.max: expected 'quota period', got {' '.join(words)!r}")
    quota = None if words[0] == "max" else _count(words[0], "cpu.max")
    return quota, _count(words[1], "cpu.max")


def format_cpu_max(cores: float | None, period_us: int) -> str:
    """What to write to v2 cpu.max for a number of cores, ``max`` quota for no limit."""
    quota = "max" if cores is None else str(cpu_quota(cores, period_us))
    return f"{quota} {period_us}"


def parse_procs(data: Data, name: str = "cgroup.procs") -> list[int]:
    """cgroup.procs or tasks: one pid per line."""
    return [_count(word, name) for word in _text(data, name).split()]


class MemoryEvents(NamedTuple):
    """v2 memory.events: how often each boundary was hit (hierarchical)."""

    low: int
    high: int  # throttled for going over memory.high
    max: int  # allocation hit memory.max (reclaim was attempted)
    oom: int  # reclaim failed at memory.max
    oom_kill: int  # processes killed by the OOM killer


def parse_memory_events(data: Data) -> MemoryEvents:
    values = parse_keyed(data, "memory.events")
    _require(values, MemoryEvents._fields, "memory.events")
    return MemoryEvents(*(values[k] for k in MemoryEvents._fields))


class Throttling(NamedTuple):
    """CFS bandwidth counters, the same in v1 and v2 cpu.stat."""

    periods: int
    throttled_periods: int
    throttled_seconds: float


class CpuStat(NamedTuple):
    """v2 cpu.stat; throttling is None unless the cpu controller is enabled for the cgroup."""

    usage_seconds: float
    user_seconds: float
    system_seconds: float
    throttling: Throttling | None


def parse_cpu_stat(data: Data) -> CpuStat:
    values = parse_keyed(data, "cpu.stat")
    _require(values, ("usage_usec", "user_usec", "system_usec"), "cpu.stat")
    throttling = None
    if "nr_periods" in values:
        _require(values, ("nr_throttled", "throttled_usec"), "cpu.stat")
        throttling = Throttling(values["nr_periods"], values["nr_throttled"],
                                values["throttled_usec"] / 1e6)
    return CpuStat(values["usage_usec"] / 1e6, values["user_usec"] / 1e6,
                   values["system_usec"] / 1e6, throttling)


def parse_cpu_stat_v1(data: Data) -> Throttling:
    """v1 cpu.stat of the cpu hierarchy; throttled_time is in nanoseconds."""
    values = parse_keyed(data, "cpu.stat")
    _require(values, ("nr_periods", "nr_throttled", "throttled_time"), "cpu.stat")
    return Throttling(values["nr_periods"], values["nr_throttled"], values["throttled_time"] / 1e9)


class CgroupEvents(NamedTuple):
    populated: bool  # some process lives in the cgroup or below
    frozen: bool  # always False before Linux 5.2, which has no v2 freezer


def parse_cgroup_events(data: Data) -> CgroupEvents:
    values = parse_keyed(data, "cgroup.events")
    _require(values, ("populated",), "cgroup.events")
    return CgroupEvents(values["populated"] != 0, values.get("frozen", 0) != 0)


class OomControl(NamedTuple):
    """v1 memory.oom_control."""

    oom_kill_disable: bool
    under_oom: bool
    oom_kill: int  # processes killed by the OOM killer (Linux 4.13+)


def parse_oom_control(data: Data) -> OomControl:
    values = parse_keyed(data, "memory.oom_control")
    _require(values, OomControl._fields, "memory.oom_control")
    return OomControl(values["oom_kill_disable"] != 0, values["under_oom"] != 0,
                      values["oom_kill"])


class CpuTimes(NamedTuple):
    user_seconds: float
    system_seconds: float


def parse_cpuacct_stat(data: Data, ticks: int) -> CpuTimes:
    """v1 cpuacct.stat, in USER_HZ ticks (``os.sysconf("SC_CLK_TCK")``)."""
    values = parse_keyed(data, "cpuacct.stat")
    _require(values, ("user", "system"), "cpuacct.stat")
    return CpuTimes(values["user"] / ticks, values["system"] / ticks)


def parse_cpuacct_usage(data: Data) -> float:
    """v1 cpuacct.usage: total CPU time in nanoseconds, as seconds."""
    return parse_count(data, "cpuacct.usage") / 1e9


class ProcCgroups(NamedTuple):
    """A process's cgroup paths: the v2 one and, by controller, the v1 ones."""

    unified: str | None
    v1: dict[str, str]  # controller (or name=... for named hierarchies) -> path


def parse_proc_cgroup(data: Data) -> ProcCgroups:
    """/proc/<pid>/cgroup: ``hierarchy-id:controller,list:path`` per line; v2 is ``0::path``."""
    unified = None
    v1: dict[str, str] = {}
    for number, line in enumerate(_text(data, "/proc/pid/cgroup").splitlines(), 1):
        if not line:
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not _COUNT.fullmatch(parts[0]) or not parts[2].startswith("/"):
            raise ValueError(f"/proc/pid/cgroup: line {number}: expected 'id:controllers:/path', "
                             f"got {line!r}")
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            unified = path
        else:
            for controller in controllers.split(","):
                v1[controller] = path
    return ProcCgroups(unified, v1)


class Mount(NamedTuple):
    """One line of /proc/self/mountinfo, the fields cgroup lookup needs."""

    root: str  # the path inside the filesystem that is mounted (a cgroup, for cgroupfs)
    mount_point: str
    options: frozenset[str]  # per-mount options: rw or ro, ...
    fstype: str
    super_options: frozenset[str]  # per-superblock options: for v1 cgroupfs, its controllers

    @property
    def writable(self) -> bool:
        return "rw" in self.options and "ro" not in self.super_options


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    return _MOUNTINFO_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(data: Data) -> list[Mount]:
    """/proc/<pid>/mountinfo (proc(5)): optional fields end at a lone ``-``."""
    mounts = []
    for number, line in enumerate(_text(data, "mountinfo").splitlines(), 1):
        if not line:
            continue
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
        except ValueError:
            separator = -1
        if separator < 0 or len(fields) < separator + 4:
            raise ValueError(f"mountinfo: line {number}: not a mountinfo line: {line!r}")
        mounts.append(Mount(
            root=_unescape(fields[3]),
            mount_point=_unescape(fields[4]),
            options=frozenset(fields[5].split(",")),
            fstype=fields[separator + 1],
            super_options=frozenset(fields[separator + 3].split(",")),
        ))
    return mounts


class Hierarchies(NamedTuple):
    unified: Mount | None
    v1: dict[str, Mount]  # controller -> the mount of its hierarchy (co-mounted ones share)


def cgroup_hierarchies(mounts: Iterable[Mount]) -> Hierarchies:
    """The cgroup mounts among all mounts; the first mount of each hierarchy wins."""
    unified = None
    v1: dict[str, Mount] = {}
    for mount in mounts:
        if mount.fstype == "cgroup2" and unified is None:
            unified = mount
        elif mount.fstype == "cgroup":
            for controller in sorted(mount.super_options & V1_CONTROLLERS):
                v1.setdefault(controller, mount)
    return Hierarchies(unified, v1)


def cgroup_dir(mount: Mount, path: str) -> str | None:
    """The directory of cgroup ``path`` under ``mount``, None when the mount does not show it.

    A container may mount only part of a hierarchy (mount root ``/docker/abc``); a cgroup
    outside that part is not reachable through this mount.
    """
    if ".." in path.split("/"):  # outside our cgroup namespace: "/../.."
        return None
    path = posixpath.normpath(path)
    root = posixpath.normpath(mount.root)
    if root == "/":
        relative = path
    elif path == root or path.startswith(root + "/"):
        relative = path[len(root):]
    else:
        return None
    return mount.mount_point.rstrip("/") + relative if relative != "/" else mount.mount_point
