"""Real processes in real cells: the kernel enforces the limits and kill() leaves nothing.

On this machine cgroup v1 has every hierarchy, and cgroup2 is mounted without controllers,
so v2 is exercised for containment (procs, cgroup.kill, cpu.stat) only.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procpilot.controller.isolation import Backend, Cell, Limits, choose, kill_and_wait, root_name
from procpilot.controller.isolation.base import enter_argv, remove_dirs
from procpilot.controller.isolation.v1 import Cgroup1Backend
from procpilot.controller.isolation.v2 import LEAF, move_into_leaf
from tests.support.controller import alive
from tests.support.service import wait_for

ALLOCATE = """
import time
chunks = []
while True:
    chunks.append(b"x" * (20 << 20))  # written, so it is charged
    time.sleep(0.02)
"""
FORK_LOOP = """
import os, time
children = refused = 0
while refused < 50:
    try:
        pid = os.fork()
    except BlockingIOError:
        refused += 1
        time.sleep(0.002)
        continue
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    children += 1
print(children, refused, flush=True)
time.sleep(120)
"""
# The main process exits at once; the grandchild left behind is in a session of its own.
ESCAPE = 'setsid sh -c "sleep 300 & echo \\$! >$0; wait" "$0" &'


def start(cell: Cell, *argv: str, stdout: int | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([*cell.enter_argv(), *argv], stdout=stdout)
    wait_for(lambda: proc.pid in cell.pids() or proc.poll() is not None)
    return proc


def need(backend: Backend, kind: str) -> None:
    if kind not in backend.supports:
        pytest.skip(f"{backend.name} here cannot enforce {kind} limits")


def escapee(cell: Cell, tmp_path: Path) -> int:
    """Start ESCAPE in the cell; the pid of the grandchild, which outlives its parents."""
    pidfile = tmp_path / "escapee"
    start(cell, "sh", "-c", ESCAPE, str(pidfile)).wait()
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    pid = int(pidfile.read_text())
    assert alive(pid) and os.getsid(pid) != os.getsid(0)
    assert pid in cell.pids()
    return pid


def test_v1_memory_limit_oom_kills_and_is_never_exceeded(cgroup1: Backend) -> None:
    need(cgroup1, "memory")
    limit = 100 << 20
    cell = cgroup1.create("oom", Limits(memory=limit))
    assert cell.oom_kills() == 0
    proc = start(cell, sys.executable, "-c", ALLOCATE)
    peaks = []
    while proc.poll() is None:
        peak = cell.usage().memory_peak_bytes
        assert peak is not None
        peaks.append(peak)
        time.sleep(0.005)
    assert proc.returncode == -signal.SIGKILL
    assert cell.oom_kills() == 1
    final = cell.usage().memory_peak_bytes
    assert final is not None and final <= limit
    assert max(peaks) <= limit
    assert final > limit // 2  # it really allocated up to the limit
    assert cell.remove()


def test_v1_cpu_limit_holds_a_burner_to_a_quarter_core(cgroup1: Backend) -> None:
    need(cgroup1, "cpu")
    cell = cgroup1.create("burner", Limits(cpu=0.25))
    proc = start(cell, sys.executable, "-c", "while True: pass")
    try:
        first, started = cell.usage().cpu_seconds, time.monotonic()
        time.sleep(5)
        usage, elapsed = cell.usage(), time.monotonic() - started
    finally:
        assert kill_and_wait(cell)
        proc.wait()
    assert first is not None and usage.cpu_seconds is not None
    cores = (usage.cpu_seconds - first) / elapsed
    assert 0.18 <= cores <= 0.32, cores
    assert usage.cpu_throttled_seconds is not None and usage.cpu_throttled_seconds > 0
    assert cell.remove()


def test_v1_tasks_limit_caps_a_fork_loop(cgroup1: Backend) -> None:
    need(cgroup1, "tasks")
    cell = cgroup1.create("forker", Limits(tasks=20))
    proc = start(cell, sys.executable, "-c", FORK_LOOP, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        samples = []
        while not select.select([proc.stdout], [], [], 0.002)[0]:  # until it reports
            tasks = cell.usage().tasks
            assert tasks is not None
            samples.append(tasks)
        children, refused = map(int, proc.stdout.readline().split())
        most = max(samples)
        assert (children, refused) == (19, 50)  # 20 tasks, the forking one included
        assert most <= 20
        assert cell.usage().tasks == 20
    finally:
        assert kill_and_wait(cell)
        proc.wait()
    assert cell.remove()


def test_v1_kill_leaves_no_double_forked_escapee(cgroup1: Backend, tmp_path: Path) -> None:
    cell = cgroup1.create("escape", Limits())
    pid = escapee(cell, tmp_path)
    assert cell.kill()
    wait_for(cell.empty)
    wait_for(lambda: not alive(pid))
    assert cell.remove()
    assert not any(os.path.exists(d) for d in cell.dirs)
    assert cell.remove()  # already gone is fine
    assert cell.usage().memory_bytes is None and cell.oom_kills() is None


@pytest.mark.parametrize("kind", ["cgroup1", "cgroup2"])
def test_kill_and_remove_reach_sub_cgroups_a_nested_owner_made(
        kind: str, request: pytest.FixtureRequest) -> None:
    backend: Backend = request.getfixturevalue(kind)
    cell = backend.create("nesting", Limits())
    # What a procpilot-run started inside the cell makes: <cell>/procpilot-run/run-<pid>-<t>.
    nested = [os.path.join(d, "procpilot-run", "run-1-1") for d in cell.dirs]
    for directory in nested:
        os.makedirs(directory)
    inner = subprocess.Popen(
        [*enter_argv([os.path.join(d, "cgroup.procs") for d in nested]), "sleep", "300"])
    try:
        wait_for(lambda: inner.pid in cell.pids())
        assert not cell.empty()
        assert cell.kill()
        wait_for(cell.empty)
        assert inner.wait(timeout=10) == -signal.SIGKILL
        assert cell.remove()
        assert not any(os.path.exists(d) for d in cell.dirs)
    finally:
        inner.kill()
        inner.wait()
        remove_dirs(cell.dirs)


def test_v1_leftovers_of_a_crashed_owner_are_found_killed_and_removed(
        cgroup1: Backend) -> None:
    crashed = cgroup1.create("instance-1", Limits(memory=64 << 20))
    proc = start(crashed, "sleep", "300")
    # A restarted owner: a new backend object with the same identity and root.
    assert isinstance(cgroup1, Cgroup1Backend)
    restarted = Cgroup1Backend(cgroup1.by_controller)
    restarted.prepare()
    mine = restarted.create("instance-2", Limits())
    found = restarted.leftovers()
    assert [c.name for c in found] == ["instance-1"]
    assert found[0].pids() == [proc.pid]
    assert found[0].kill()
    wait_for(found[0].empty)
    assert proc.wait() == -signal.SIGKILL
    assert found[0].remove()
    assert mine.remove()
    assert restarted.leftovers() == []


def test_owners_sharing_an_explicit_root_keep_to_their_own_cells(explicit_root: str) -> None:
    first = choose("auto", "/run/first.sock", root=explicit_root)
    second = choose("auto", "/run/second.sock", root=explicit_root)
    cell = first.create("web-0-1", Limits())
    proc = start(cell, "sleep", "300")
    try:
        assert second.leftovers() == []  # before: first's cell, to be killed
        for backend, identity in ((first, "/run/first.sock"), (second, "/run/second.sock")):
            assert {os.path.basename(r) for r in backend.roots} == {root_name(identity)}
        assert [c.name for c in choose("auto", "/run/first.sock", root=explicit_root)
                .leftovers()] == ["web-0-1"]
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("kind", ["cgroup1", "cgroup2"])
def test_abandon_removes_only_the_roots_prepare_made(kind: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating cgroups needs root")
    identity = f"/run/abandon-{os.getpid()}.sock"
    first = choose(kind, identity)  # the roots are new
    try:
        choose(kind, identity).abandon()  # a second start of the same owner: they existed
        assert all(os.path.isdir(r) for r in first.roots)
        first.abandon()
        assert not any(os.path.exists(r) for r in first.roots)
    finally:
        first.close()


def test_v2_contains_and_kills_a_double_forked_escapee(cgroup2: Backend, tmp_path: Path) -> None:
    cell = cgroup2.create("escape", Limits())
    pid = escapee(cell, tmp_path)
    usage = cell.usage()
    assert usage.cpu_seconds is not None and usage.tasks == 2  # sh and sleep
    assert cell.kill()  # cgroup.kill
    wait_for(cell.empty)
    wait_for(lambda: not alive(pid))
    assert cell.remove()
    assert not os.path.exists(cell.dirs[0])


def test_v2_move_into_leaf_empties_a_cgroup(cgroup2: Backend) -> None:
    own = os.path.join(cgroup2.roots[0], "own")
    os.mkdir(own)
    procs = [subprocess.Popen(["sh", "-c", f"echo 0 >{own}/cgroup.procs; exec sleep 300"])
             for _ in range(3)]
    try:
        wait_for(lambda: len(Path(own, "cgroup.procs").read_text().split()) == 3)
        move_into_leaf(own)
        assert Path(own, "cgroup.procs").read_text() == ""
        moved = Path(own, LEAF, "cgroup.procs").read_text().split()
        assert sorted(map(int, moved)) == sorted(p.pid for p in procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        wait_for(lambda: Path(own, LEAF, "cgroup.procs").read_text() == "")
        os.rmdir(os.path.join(own, LEAF))
        os.rmdir(own)
