"""Backends against fixture trees laid out like cgroup mounts: exactly what gets written.

This machine has no cgroup2 controllers, so the v2 limit files are only checked here: the
fixture is a pure-v2 host whose root cgroup offers memory, cpu and pids. A fixture cannot
create interface files on mkdir as cgroupfs does, so each cell directory is laid out in
advance (create() takes over an existing empty cell, as it would a crashed owner's).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from procpilot.controller.isolation import (
    ENTER_FAILED,
    IsolationError,
    Limits,
    choose,
    root_name,
)
from procpilot.controller.isolation.base import enter_argv
from procpilot.controller.isolation.v1 import limit_writes as v1_writes
from procpilot.core.procfs import FS

IDENTITY = "/run/procpilot/control.sock"
ROOT = "procpilot-%2Frun%2Fprocpilot%2Fcontrol.sock"
LIMIT_FILES = ("memory.max", "memory.high", "memory.swap.max", "cpu.max", "pids.max")


def fixture_fs(proc: Path) -> FS:
    """The fixture procfs (it has no /proc/stat, so its units are given, not read)."""
    return FS(str(proc), 100, 4096, 0.0)


def cgroup(path: Path, controllers: str = "", **files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in ("cgroup.procs", "cgroup.subtree_control", "cgroup.events", "cgroup.kill",
                 *LIMIT_FILES):
        (path / name).write_text("")
    (path / "cgroup.controllers").write_text(controllers + "\n")
    (path / "cgroup.type").write_text("domain\n")
    for name, content in files.items():
        (path / name.replace("_", ".", 1)).write_text(content)
    return path


@pytest.fixture
def host(tmp_path: Path) -> tuple[Path, Path]:
    """A pure cgroup2 host, this process in the root cgroup: (proc dir, mount point)."""
    mount = tmp_path / "cgroup"
    cgroup(mount, "cpuset cpu io memory hugetlb pids", cgroup_procs="1\n")
    (mount / "cgroup.type").unlink()  # the root cgroup has none
    cgroup(mount / ROOT, "cpu memory pids")
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "mountinfo").write_text(
        f"30 23 0:26 / {mount} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
        f"rw,nsdelegate,memory_recursiveprot\n")
    (proc / "cgroup").write_text("0::/\n")
    return proc.parent, mount


def test_v2_setup_enables_controllers_in_own_cgroup_and_root(host: tuple[Path, Path]) -> None:
    proc, mount = host
    backend = choose("auto", IDENTITY, fs=fixture_fs(proc))
    assert backend.name == "cgroup2"
    assert backend.roots == (str(mount / ROOT),)
    assert (mount / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (mount / ROOT / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert backend.supports == {"memory", "memory_high", "swap", "cpu", "tasks"}


def test_v2_limit_files_get_exactly_the_limits(host: tuple[Path, Path]) -> None:
    proc, mount = host
    backend = choose("cgroup2", IDENTITY, fs=fixture_fs(proc))
    cell_dir = cgroup(mount / ROOT / "web-0")
    limits = Limits(memory=100 << 20, memory_high=80 << 20, swap=0, cpu=0.25, tasks=20)
    cell = backend.create("web-0", limits)
    assert {f: (cell_dir / f).read_text() for f in LIMIT_FILES} == {
        "memory.max": "104857600",
        "memory.high": "83886080",
        "memory.swap.max": "0",
        "cpu.max": "25000 100000",
        "pids.max": "20",
    }
    assert cell.enforced == {"memory", "memory_high", "swap", "cpu", "tasks"}
    assert cell.enter_argv() == enter_argv([str(cell_dir / "cgroup.procs")])


def test_v2_unset_limits_are_written_as_max(host: tuple[Path, Path]) -> None:
    proc, mount = host
    backend = choose("cgroup2", IDENTITY, fs=fixture_fs(proc))
    cell_dir = cgroup(mount / ROOT / "web-1", memory_max="1234", cpu_max="5000 100000")
    cell = backend.create("web-1", Limits(cpu=1.5))
    assert {f: (cell_dir / f).read_text() for f in LIMIT_FILES} == {
        "memory.max": "max", "memory.high": "max", "memory.swap.max": "max",
        "cpu.max": "150000 100000", "pids.max": "max"}
    assert cell.enforced == {"cpu"}


def test_v2_without_swap_accounting_does_not_enforce_swap(host: tuple[Path, Path]) -> None:
    proc, mount = host
    (mount / ROOT / "memory.swap.max").unlink()
    backend = choose("cgroup2", IDENTITY, fs=fixture_fs(proc))
    assert "swap" not in backend.supports
    cell_dir = cgroup(mount / ROOT / "w")
    (cell_dir / "memory.swap.max").unlink()
    assert backend.create("w", Limits(memory=1 << 20, swap=0)).enforced == {"memory"}


def test_v2_refuses_a_cell_that_has_processes(host: tuple[Path, Path]) -> None:
    proc, mount = host
    backend = choose("cgroup2", IDENTITY, fs=fixture_fs(proc))
    cgroup(mount / ROOT / "busy", cgroup_procs="4242\n")
    with pytest.raises(IsolationError, match="exists and has processes"):
        backend.create("busy", Limits())
    with pytest.raises(ValueError, match="cell name"):
        backend.create("../escape", Limits())


def test_v2_usage_and_oom_kills_from_the_files(host: tuple[Path, Path]) -> None:
    proc, mount = host
    backend = choose("cgroup2", IDENTITY, fs=fixture_fs(proc))
    cell_dir = cgroup(mount / ROOT / "job")
    cell = backend.create("job", Limits())
    (cell_dir / "memory.current").write_text("1048576\n")
    (cell_dir / "memory.peak").write_text("2097152\n")
    (cell_dir / "memory.stat").write_text("anon 524288\nfile 524288\nkernel 0\n")
    (cell_dir / "pids.current").write_text("3\n")
    (cell_dir / "cpu.stat").write_text(
        "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 10\n"
        "nr_throttled 2\nthrottled_usec 250000\n")
    (cell_dir / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")
    usage = cell.usage()
    assert (usage.memory_bytes, usage.memory_peak_bytes, usage.tasks) == (1 << 20, 2 << 20, 3)
    assert usage.anon_bytes == 1 << 19
    assert (usage.cpu_seconds, usage.cpu_user_seconds, usage.cpu_system_seconds) == \
        (1.5, 1.0, 0.5)
    assert usage.cpu_throttled_seconds == 0.25
    assert usage.missing == {}
    assert cell.oom_kills() == 1
    (cell_dir / "memory.peak").unlink()  # before Linux 5.19
    assert cell.usage().missing == {"memory_peak_bytes": f"{cell_dir}/memory.peak: not present"}


def test_v2_leftovers_are_cells_this_object_did_not_create(host: tuple[Path, Path]) -> None:
    proc, mount = host
    cgroup(mount / ROOT / "old-1")
    backend = choose("cgroup2", IDENTITY, fs=fixture_fs(proc))
    cgroup(mount / ROOT / "new")
    backend.create("new", Limits())
    assert [c.name for c in backend.leftovers()] == ["old-1"]


def test_explicit_root_must_exist(host: tuple[Path, Path]) -> None:
    proc, mount = host
    with pytest.raises(IsolationError, match=f"cgroup2: {mount}/nope: does not exist"):
        choose("cgroup2", IDENTITY, root="/nope", fs=fixture_fs(proc))
    with pytest.raises(IsolationError, match="absolute cgroup path"):
        choose("cgroup2", IDENTITY, root="relative", fs=fixture_fs(proc))
    explicit = cgroup(mount / "operator.slice", "memory")
    cgroup(explicit / ROOT, "memory")
    backend = choose("cgroup2", IDENTITY, root="/operator.slice", fs=fixture_fs(proc))
    assert backend.roots == (str(explicit / ROOT),)
    assert backend.supports == {"memory", "memory_high", "swap"}  # only memory offered
    assert (explicit / "cgroup.subtree_control").read_text() == "+memory"


def test_owners_sharing_an_explicit_root_never_see_each_others_cells(
        host: tuple[Path, Path]) -> None:
    proc, mount = host
    shared = cgroup(mount / "shared.slice", "memory cpu pids")
    other = "/run/procpilot/other.sock"
    for identity in (IDENTITY, other, "run"):
        cgroup(shared / root_name(identity), "memory cpu pids")
    mine = choose("cgroup2", IDENTITY, root="/shared.slice", fs=fixture_fs(proc))
    cgroup(shared / ROOT / "run-0-1")  # a controller's cell named like procpilot-run's
    mine.create("run-0-1", Limits())
    for identity in (other, "run"):
        theirs = choose("cgroup2", identity, root="/shared.slice", fs=fixture_fs(proc))
        assert theirs.roots == (str(shared / root_name(identity)),)
        assert theirs.leftovers() == []
    restarted = choose("cgroup2", IDENTITY, root="/shared.slice", fs=fixture_fs(proc))
    assert [c.name for c in restarted.leftovers()] == ["run-0-1"]


def test_an_explicit_root_with_processes_is_not_rearranged(host: tuple[Path, Path]) -> None:
    proc, mount = host
    explicit = cgroup(mount / "busy.slice", "memory", cgroup_procs="4242\n")
    cgroup(explicit / ROOT)
    backend = choose("cgroup2", IDENTITY, root="/busy.slice", fs=fixture_fs(proc))
    assert not (explicit / "procpilot-supervisor").exists()
    assert (explicit / "cgroup.procs").read_text() == "4242\n"
    assert any("not moved out of an explicit root" in n for n in backend.notes)


def test_an_explicit_root_that_cannot_be_used_is_an_error_even_with_auto(
        host: tuple[Path, Path], tmp_path: Path) -> None:
    proc, mount = host
    with pytest.raises(IsolationError, match=f"cgroup root /nope cannot be used: .*"
                                             f"cgroup2: {mount}/nope: does not exist"):
        choose("auto", IDENTITY, root="/nope", fs=fixture_fs(proc))
    with pytest.raises(IsolationError, match="auto: cannot probe cgroups"):
        choose("auto", IDENTITY, root="/nope", fs=fixture_fs(tmp_path / "no-proc"))
    assert choose("none", IDENTITY, root="/nope", fs=fixture_fs(proc)).name == "none"


def test_auto_on_a_machine_without_proc_is_none(tmp_path: Path) -> None:
    assert choose("auto", IDENTITY, fs=fixture_fs(tmp_path)).name == "none"
    with pytest.raises(IsolationError, match="cannot probe cgroups"):
        choose("cgroup1", IDENTITY, fs=fixture_fs(tmp_path))


def test_v1_writes_memsw_around_the_memory_limit() -> None:
    limits = Limits(memory=100, memory_high=80, swap=10, cpu=0.5, tasks=7)
    assert v1_writes(limits, frozenset({"memory", "cpu", "pids"}), memsw=True) == [
        ("memory", "memory.memsw.limit_in_bytes", "-1", None),
        ("memory", "memory.limit_in_bytes", "100", "memory"),
        ("memory", "memory.soft_limit_in_bytes", "80", "memory_high"),
        ("memory", "memory.memsw.limit_in_bytes", "110", "swap"),
        ("cpu", "cpu.cfs_period_us", "100000", None),
        ("cpu", "cpu.cfs_quota_us", "50000", "cpu"),
        ("pids", "pids.max", "7", "tasks"),
    ]
    # Swap alone has no v1 expression; no limit is -1 (pids: max).
    assert v1_writes(Limits(swap=10), frozenset({"memory", "pids"}), memsw=True) == [
        ("memory", "memory.memsw.limit_in_bytes", "-1", None),
        ("memory", "memory.limit_in_bytes", "-1", "memory"),
        ("memory", "memory.soft_limit_in_bytes", "-1", "memory_high"),
        ("pids", "pids.max", "max", "tasks"),
    ]


def test_enter_prefix_writes_0_to_each_file_then_execs(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    argv = [*enter_argv([str(a), str(b)]), "printf", "%s|", "x y", "--", "$HOME"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert out == "x y|--|$HOME|"  # the command's arguments arrive untouched
    assert a.read_text() == b.read_text() == "0\n"


def test_enter_prefix_fails_with_its_own_status(tmp_path: Path) -> None:
    missing = tmp_path / "gone" / "cgroup.procs"
    done = subprocess.run([*enter_argv([str(missing)]), "true"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == ENTER_FAILED
    assert f"procpilot: cannot move into cgroup {tmp_path}/gone" in done.stderr
