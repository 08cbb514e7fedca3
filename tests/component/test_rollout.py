"""Rolling restarts on the fake runtime: capacity through restart --rolling and through a
reload that changes a program, halting on a replacement that never gets ready, the
not-ready-first canary, and listening sockets kept across it all."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from procpilot.controller.control import CommandError
from procpilot.controller.supervisor import Supervisor
from tests.component.test_supervisor import QUICK, on_supervisor, states, write
from tests.support.fakes import FakeRuntime, sleep

POOL = {"command": "serve", "instances": 3, **QUICK}


@asynccontextmanager
async def watching(sup: Supervisor, rt: FakeRuntime, program: str
                   ) -> AsyncIterator[list[tuple[int, int]]]:
    """(ready instances, live processes) of program, every 50 ms of virtual time."""
    seen: list[tuple[int, int]] = []

    async def sample() -> None:
        while True:
            p = sup.programs[program]
            alive = sum(not c.exited.done() for c in rt.children if c.program == program)
            seen.append((sum(i.ready for i in p.instances.values()), alive))
            await asyncio.sleep(0.05)

    task = asyncio.get_running_loop().create_task(sample())
    try:
        yield seen
    finally:
        task.cancel()


@pytest.mark.parametrize(("rollout", "fewest_ready", "most_alive"), [
    ({}, 3, 4),  # max_surge 1, max_unavailable 0
    ({"max_surge": 0, "max_unavailable": 1}, 2, 3),
    ({"max_surge": 2, "max_unavailable": 1}, 2, 5),
])
def test_rolling_restart_keeps_capacity(tmp_path: Path, rollout: dict[str, int],
                                        fewest_ready: int, most_alive: int) -> None:
    programs = {"pool": {**POOL, "rollout": rollout}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        first = [rt.current("pool", i) for i in range(3)]
        async with watching(sup, rt, "pool") as seen:
            answer = await sup.handle({"cmd": "restart", "target": "pool", "rolling": True})
        assert answer == "pool: 3 of 3 instances replaced"
        assert min(r for r, _ in seen) == fewest_ready
        assert max(a for _, a in seen) == most_alive
        assert all(c.exited.done() for c in first)
        assert [len(rt.of("pool", i)) for i in range(3)] == [2, 2, 2]
        assert sup.programs["pool"].restarts == {"manual": 3}

    on_supervisor(tmp_path / "c.yaml", programs, test)


def test_a_replacement_that_never_gets_ready_halts_and_the_old_process_serves_on(
    tmp_path: Path,
) -> None:
    notify = {k: v for k, v in POOL.items() if k != "start_seconds"}
    programs = {"pool": {**notify, "ready": "notify", "ready_timeout": "1m",
                         "restart": {"delay": "1s", "max_restarts": 1}}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(0.1)
        for i in range(3):
            rt.current("pool", i).notify("READY=1")
        old = rt.current("pool", 0)
        roll = asyncio.get_running_loop().create_task(
            sup.handle({"cmd": "restart", "target": "pool", "rolling": True}))
        await sleep(0.1)
        rt.current("pool", 0).exit(1)  # the new process dies before READY=1
        with pytest.raises(CommandError, match=r"pool: 0 of 3 instances replaced; halted: "
                                               r"pool:0 \(backoff\) is not ready"):
            await roll
        inst = sup.view().programs[0].instances[0]
        assert (inst.ready, inst.replacing) == (True, old.pid)
        assert len(rt.of("pool", 1)) == len(rt.of("pool", 2)) == 1  # untouched
        await sleep(70)  # the next attempt times out too: fatal, the old one still serves
        assert states(sup)["pool:0"] == "fatal" and not old.exited.done()
        await sup.handle({"cmd": "stop", "target": "pool:0"})  # a stop takes both
        assert old.exited.done()

    on_supervisor(tmp_path / "c.yaml", programs, test)


def test_a_reload_that_changes_a_program_rolls_it_out(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        write(path, {"pool": {**POOL, "command": "serve --v2"}})
        async with watching(sup, rt, "pool") as seen:
            await sup.reload()
            await sleep(10)
        assert min(r for r, _ in seen) == 3 and max(a for _, a in seen) == 4
        assert [c.spec.argv for c in rt.children[3:]] == [("serve", "--v2")] * 3
        assert states(sup) == dict.fromkeys(("pool:0", "pool:1", "pool:2"), "running")
        write(path, {"pool": {**POOL, "command": "serve --v3",
                              "rollout": {"strategy": "all-at-once"}}})
        async with watching(sup, rt, "pool") as seen:
            await sup.reload()
            await sleep(10)
        assert (min(r for r, _ in seen), max(a for _, a in seen)) == (0, 3)

    on_supervisor(path, {"pool": POOL}, test)


def test_not_ready_instances_go_first_and_halt_the_rollout_before_serving_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.yaml"
    programs = {"pool": {**POOL, "restart": {"delay": "1h", "max_delay": "1h"}}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        rt.current("pool", 1).exit(1)  # in backoff for an hour
        await sleep(0.1)
        write(path, {"pool": {**programs["pool"], "command": "exit 1"}})  # broken
        await sup.reload()
        await sleep(5)
        assert len(rt.of("pool", 1)) == 2  # the canary was tried...
        assert [len(rt.of("pool", i)) for i in (0, 2)] == [1, 1]  # ...the others untouched
        assert {states(sup)[f"pool:{i}"] for i in (0, 2)} == {"running"}

    on_supervisor(path, programs, test)


def test_sockets_survive_rollouts_and_close_when_no_longer_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    http = {"name": "http", "listen": "127.0.0.1:8080"}
    programs: dict[str, Any] = {"web": {**POOL, "sockets": [http]}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        fd = rt.listening["127.0.0.1:8080"]
        assert {c.spec.sockets for c in rt.children} == {(("http", fd),)}
        write(path, {"web": {**programs["web"], "command": "serve --v2"}})
        await sup.reload()
        await sleep(10)
        assert {c.spec.sockets for c in rt.children} == {(("http", fd),)}  # the same socket
        admin = {"name": "admin", "listen": "unix:/run/web-admin.sock"}
        write(path, {"web": {**programs["web"], "sockets": [admin]}})
        await sup.reload()
        await sleep(10)
        assert set(rt.listening) == {"unix:/run/web-admin.sock"}
        assert rt.children[-1].spec.sockets == (("admin", rt.listening[admin["listen"]]),)
        write(path, {})
        await sup.reload()
        await sleep(10)
        assert rt.listening == {}

    on_supervisor(path, programs, test)


def test_a_socket_that_cannot_be_bound_fails_the_start_and_says_why(tmp_path: Path) -> None:
    programs = {"web": {**POOL, "instances": 1, "sockets": [{"name": "x", "listen": ":1"}],
                        "restart": {"max_restarts": 0}}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(1)
        last = sup.view().programs[0].instances[0].last_exit
        assert last is not None and last.error == "cannot listen on :1: Address already in use"
        assert rt.children == []

    on_supervisor(tmp_path / "c.yaml", programs, test)


SLOW = {"command": "serve", "ready": "notify", "ready_timeout": "5m", "stop": {"timeout": "1s"}}


def test_a_program_removed_mid_rollout_stops_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    programs = {"pool": {**SLOW, "instances": 3}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(0.1)
        for i in range(3):
            rt.current("pool", i).notify("READY=1")
        write(path, {"pool": {**programs["pool"], "command": "serve --v2"}})
        await sup.reload()
        await sleep(10)  # the first surge waits for a READY=1 that does not come
        write(path, {})
        await sup.reload()
        await sleep(2)  # the stop timeout, not the replacement's ready_timeout
        assert "pool" not in sup.programs
        assert len(rt.children) == 4  # no further surge
        assert all(c.exited.done() for c in rt.children)

    on_supervisor(path, programs, test)


def test_a_reload_gives_changed_programs_their_config_at_once_and_orders_rollouts_by_depends_on(
    tmp_path: Path,
) -> None:
    """a's rollout is slow; b (an unrelated, later priority) rolls out meanwhile; c, which
    depends on a, has its new config at once (a restart runs it) but rolls out after a."""
    path = tmp_path / "c.yaml"
    programs: dict[str, Any] = {"a": {**SLOW, "priority": 1},
                                "b": {"command": "serve", "priority": 2, **QUICK},
                                "c": {"command": "serve", "priority": 2, "depends_on": ["a"],
                                      **QUICK}}
    v2 = ("serve", "--v2")

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(0.1)
        rt.current("a").notify("READY=1")
        await sleep(5)
        write(path, {n: {**p, "command": "serve --v2"} for n, p in programs.items()})
        await sup.reload()
        assert {sup.programs[n].config.command for n in "abc"} == {v2}
        await sleep(10)  # a's new process is not ready yet
        assert [c.spec.argv for c in rt.of("b")] == [("serve",), v2]
        assert [c.spec.argv for c in rt.of("c")] == [("serve",)]  # waits for a's rollout
        rt.current("a").notify("READY=1")
        await sleep(5)
        assert [c.spec.argv for c in rt.of("c")] == [("serve",), v2]
        assert states(sup) == dict.fromkeys(("a:0", "b:0", "c:0"), "running")

    on_supervisor(path, programs, test)


def test_a_rollout_that_moves_the_log_files_lets_the_old_ones_go(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    old, new = tmp_path / "old", tmp_path / "new"
    programs = {"web": {**POOL, "instances": 1, "logs": {"directory": str(old)}}}

    def open_in(directory: Path) -> list[str]:
        fds = [os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")]
        return [p for p in fds if p.startswith(str(directory))]

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        first = rt.current("web")
        first.say("v1\n")
        write(path, {"web": {**POOL, "instances": 1, "logs": {"directory": str(new)}}})
        await sup.reload()
        await sleep(0.5)  # the surge starts; the old process still serves, and writes
        first.say("still v1\n")
        await sleep(5)
        rt.current("web").say("v2\n")
        assert (old / "web-0.log").read_text() == "v1\nstill v1\n"
        assert (new / "web-0.log").read_text() == "v2\n"
        assert open_in(old) == []
        (old / "web-0.log").unlink()
        sup.reopen_logs()  # SIGUSR1
        assert not (old / "web-0.log").exists()
        assert open_in(new) == [str(new / "web-0.log")]

    on_supervisor(path, programs, test)
