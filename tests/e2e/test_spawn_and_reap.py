"""Reaper and spawn with real processes: exit statuses, orphans, process groups, pdeathsig."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from procpilot.controller.reaper import Reaper
from procpilot.controller.spawn import SpawnSpec, spawn
from procpilot.controller.states import ExitStatus

pytestmark = pytest.mark.timeout(60)


@asynccontextmanager
async def reaping() -> AsyncIterator[Reaper]:
    reaper = Reaper(asyncio.get_running_loop())
    reaper.install()
    try:
        yield reaper
    finally:
        reaper.uninstall()


def run(test: Callable[[Reaper], Awaitable[None]]) -> None:
    async def main() -> None:
        async with reaping() as reaper:
            await test(reaper)

    asyncio.run(main())


def sh(script: str) -> SpawnSpec:
    return SpawnSpec(argv=["/bin/sh", "-c", script], capture_output=False)


def zombies_of(pid: int) -> list[int]:
    """Children of pid in state Z, read from /proc."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] == "Z" and int(fields[1]) == pid:
                found.append(int(name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


async def wait_for(cond: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def test_exit_code_and_signal_are_reported() -> None:
    async def test(reaper: Reaper) -> None:
        a = spawn(sh("exit 3"), reaper)
        b = spawn(sh("kill -TERM $$"), reaper)
        assert await a.exited == ExitStatus(3, None)
        assert await b.exited == ExitStatus(None, signal.SIGTERM)
        assert (await b.exited).shell_code == 128 + signal.SIGTERM
        assert a.popen.returncode == 3  # marked by hand: Popen never waits itself
        assert reaper.watched == 0

    run(test)


def test_many_simultaneous_exits_are_all_reaped() -> None:
    async def test(reaper: Reaper) -> None:
        children = [spawn(sh(f"exit {i % 7}"), reaper) for i in range(40)]
        statuses = await asyncio.gather(*(c.exited for c in children))
        assert [s.code for s in statuses] == [i % 7 for i in range(40)]

    run(test)


def test_double_forked_orphan_is_reaped_and_counted(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"

    async def test(reaper: Reaper) -> None:
        child = spawn(sh(f"(sleep 0.3; exit 0) & echo $! > {pidfile}; exit 0"), reaper)
        await child.exited
        await wait_for(lambda: reaper.reaped_unmanaged >= 1)
        assert zombies_of(os.getpid()) == []

    run(test)


def test_signal_group_reaches_grandchildren(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"

    async def test(reaper: Reaper) -> None:
        child = spawn(sh(f"sleep 60 & echo $! > {pidfile}; wait"), reaper)
        await wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
        grandchild = int(pidfile.read_text())
        assert os.getpgid(grandchild) == child.pid
        assert child.signal_group(signal.SIGTERM)
        await child.exited
        await wait_for(lambda: not alive(grandchild))

    run(test)


def test_failed_exec_raises_and_leaves_nothing() -> None:
    async def test(reaper: Reaper) -> None:
        with pytest.raises(FileNotFoundError):
            spawn(SpawnSpec(argv=["/nonexistent/program"]), reaper)
        assert reaper.watched == 0
        assert zombies_of(os.getpid()) == []

    run(test)


def test_environment_and_directory(tmp_path: Path) -> None:
    async def test(reaper: Reaper) -> None:
        spec = SpawnSpec(argv=["/bin/sh", "-c", 'echo "$GREETING $(pwd)" > out'],
                         env={"GREETING": "hi", "PATH": "/usr/bin:/bin"}, cwd=str(tmp_path),
                         capture_output=False)
        assert (await spawn(spec, reaper).exited).code == 0
        assert (tmp_path / "out").read_text() == f"hi {tmp_path}\n"

    run(test)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_user_drop() -> None:
    async def test(reaper: Reaper) -> None:
        spec = SpawnSpec(argv=["/bin/sh", "-c", "id -u; id -g"], user="nobody", cwd="/")
        child = spawn(spec, reaper)
        assert (await child.exited).code == 0
        assert child.output_fd is not None
        os.set_blocking(child.output_fd, True)
        with os.fdopen(child.output_fd, "rb") as out:
            uid, gid = out.read().split()
        assert int(uid) != 0 and int(gid) != 0

    run(test)


@pytest.mark.parametrize("user", [
    None,  # setpriv --pdeathsig in front of the program
    pytest.param("nobody", marks=pytest.mark.skipif(os.geteuid() != 0, reason="needs root")),
])  # with a user: preexec_fn after the uid change
def test_children_die_with_a_killed_parent(tmp_path: Path, user: str | None) -> None:
    """PR_SET_PDEATHSIG: SIGKILL of the spawning process takes its children along."""
    pidfile = tmp_path / "pid"
    script = f"""
import asyncio, sys
from procpilot.controller.reaper import Reaper
from procpilot.controller.spawn import SpawnSpec, spawn
async def main():
    r = Reaper(asyncio.get_running_loop()); r.install()
    c = spawn(SpawnSpec(argv=["sleep", "60"], user={user!r}, cwd="/", capture_output=False), r)
    open({str(pidfile)!r}, "w").write(str(c.pid))
    await asyncio.sleep(60)
asyncio.run(main())
"""
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and pidfile.read_text()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        child = int(pidfile.read_text())
        assert alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while alive(child):
        assert time.monotonic() < deadline, "child outlived its SIGKILLed parent"
        time.sleep(0.02)
