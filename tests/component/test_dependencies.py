"""depends_on on the fake runtime: programs start once what they depend on is ready, pull it
in, wait on their own when it is not, and stop before it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from procpilot.controller.supervisor import Supervisor
from tests.component.test_supervisor import QUICK, on_supervisor, states, write
from tests.support.fakes import FakeRuntime, sleep

NOTIFY = {"stop": QUICK["stop"], "ready": "notify"}


def started(rt: FakeRuntime) -> list[tuple[str, float]]:
    return [(c.program, c.started_at) for c in rt.children]


def test_a_dependent_starts_once_its_dependency_said_ready(tmp_path: Path) -> None:
    programs = {"db": {"command": "serve", **NOTIFY},
                "web": {"command": "serve", "depends_on": ["db"], **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(30)
        assert started(rt) == [("db", 0.0)]  # db is up but not ready: web waits
        rt.current("db").notify("READY=1")
        await sleep(0.1)
        assert started(rt) == [("db", 0.0), ("web", 30.0)]

    on_supervisor(tmp_path / "c.yaml", programs, test)


def test_a_failing_dependency_holds_its_dependents_only(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    programs: dict[str, Any] = {
        "db": {"command": "exit 1", **QUICK, "restart": {"max_restarts": 0}},
        "web": {"command": "serve", "depends_on": ["db"], **QUICK},
        "cron": {"command": "serve", "priority": 200, **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(5)
        assert states(sup) == {"cron:0": "running", "db:0": "fatal", "web:0": "stopped"}
        status = {p["program"]: p for p in sup.view().status()["programs"]}
        assert status["web"].get("waiting_for") == ["db"]
        write(path, {**programs, "db": {**programs["db"], "command": "serve"}})  # fixed
        await sup.reload()
        await sleep(3)
        assert states(sup)["web:0"] == "running"
        assert sup.programs["web"].waiting_for == ()

    on_supervisor(path, programs, test)


def test_starting_a_program_starts_what_it_depends_on_first(tmp_path: Path) -> None:
    programs = {"db": {"command": "serve", "autostart": False, **NOTIFY},
                "web": {"command": "serve", "depends_on": ["db"], **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(1)
        assert started(rt) == [("db", 0.0)]  # pulled in although autostart is false
        rt.current("db").notify("READY=1")
        await sleep(2)
        await sup.handle({"cmd": "stop", "target": "all"})
        answer = asyncio.get_running_loop().create_task(
            sup.handle({"cmd": "start", "target": "web"}))
        await sleep(5)
        assert [p for p, _ in started(rt)] == ["db", "web", "db"]
        rt.current("db").notify("READY=1")
        assert await answer == "web:0 running"
        assert [p for p, _ in started(rt)] == ["db", "web", "db", "web"]

    on_supervisor(tmp_path / "c.yaml", programs, test)


def test_a_start_that_must_wait_answers_at_once_and_says_so(tmp_path: Path) -> None:
    programs = {"db": {"command": "exit 1", **QUICK, "restart": {"max_restarts": 0}},
                "web": {"command": "serve", "depends_on": ["db"], "autostart": False, **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        answer = await sup.handle({"cmd": "start", "target": "web"})
        assert answer == "web:0 stopped, web waiting for db"

    on_supervisor(tmp_path / "c.yaml", programs, test)


def test_shutdown_and_stop_all_stop_dependents_first(tmp_path: Path) -> None:
    programs = {"db": {"command": "serve", **QUICK},
                "web": {"command": "stubborn", "depends_on": ["db"], **QUICK},
                "lb": {"command": "serve", "depends_on": ["web"], **QUICK}}
    seen: list[dict[str, bool]] = []

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(5)
        assert [p for p, _ in started(rt)] == ["db", "web", "lb"]
        stop = asyncio.get_running_loop().create_task(sup.handle({"cmd": "stop", "target": "all"}))
        for _ in range(3):
            await sleep(2)
            seen.append({name: rt.current(name).exited.done() for name in ("lb", "web", "db")})
        await stop
        await sup.handle({"cmd": "stop", "target": "db"})  # alone: only db
        assert await sup.handle({"cmd": "start", "target": "lb"}) == "lb:0 running"
        await sup.handle({"cmd": "stop", "target": "db"})
        assert states(sup) == {"db:0": "stopped", "lb:0": "running", "web:0": "running"}

    on_supervisor(tmp_path / "c.yaml", programs, test)
    # lb at once; web (stubborn) only at its 5 s stop timeout, and db after it
    assert seen == [{"lb": True, "web": False, "db": False}, {"lb": True, "web": False,
                    "db": False}, {"lb": True, "web": True, "db": True}]


def test_reload_removes_dependents_first_and_adds_into_a_running_graph(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    programs: dict[str, Any] = {"db": {"command": "serve", **QUICK},
                                "web": {"command": "stubborn", "depends_on": ["db"], **QUICK},
                                "keep": {"command": "serve", **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(5)
        write(path, {"keep": programs["keep"],
                     "api": {"command": "serve", "depends_on": ["keep"], **QUICK}})
        await sup.reload()
        await sleep(0.5)
        assert [p for p, _ in started(rt)][-1] == "api"  # keep is ready: api starts at once
        await sleep(4)
        assert not rt.current("db").exited.done()  # web (stubborn) still stopping
        await sleep(1)
        assert rt.current("web").killed and rt.current("db").exited.done()
        await sleep(0.1)
        assert set(sup.programs) == {"keep", "api"}

    on_supervisor(path, programs, test)


FATAL = {"command": "exit 1", **QUICK, "restart": {"max_restarts": 0}}


def test_a_waiting_dependent_starts_once_a_reload_drops_the_dependency(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    programs: dict[str, Any] = {"db": FATAL,
                                "web": {"command": "serve", "depends_on": ["db"], **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(5)
        assert states(sup) == {"db:0": "fatal", "web:0": "stopped"}
        write(path, {**programs, "web": {"command": "serve", **QUICK}})  # no depends_on
        await sup.reload()
        await sleep(3)
        assert states(sup)["web:0"] == "running"
        assert sup.programs["web"].waiting_for == ()

    on_supervisor(path, programs, test)


def test_a_waiting_dependent_sees_stopped_dependency_slots_scaled_away(tmp_path: Path) -> None:
    """A stopped slot dropped by a scale-down never changes state: the dependent must
    look again anyway."""
    path = tmp_path / "c.yaml"
    programs: dict[str, Any] = {"db": {**FATAL, "instances": 2},
                                "web": {"command": "serve", "depends_on": ["db"], **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(5)
        await sup.handle({"cmd": "stop", "target": "db"})
        write(path, {**programs, "db": {**FATAL, "command": "serve", "instances": 1}})
        await sup.reload()
        await sleep(5)
        await sup.handle({"cmd": "start", "target": "db"})
        await sleep(3)
        assert sorted(states(sup).values()) == ["running", "running"]  # one db, and web

    on_supervisor(path, programs, test)


def test_a_waiting_dependent_sees_its_dependency_replaced_all_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    programs: dict[str, Any] = {"db": FATAL,
                                "web": {"command": "serve", "depends_on": ["db"], **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(5)
        await sup.handle({"cmd": "stop", "target": "db"})
        write(path, {**programs, "db": {**FATAL, "command": "serve",
                                        "rollout": {"strategy": "all-at-once"}}})
        await sup.reload()  # db's instances are dropped and made anew
        await sleep(5)
        assert states(sup) == {"db:0": "running", "web:0": "running"}

    on_supervisor(path, programs, test)


def test_stopping_a_program_that_waits_for_its_dependencies_calls_its_start_off(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.yaml"
    programs: dict[str, Any] = {"db": FATAL,
                                "web": {"command": "serve", "depends_on": ["db"], **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(5)
        assert await sup.handle({"cmd": "stop", "target": "web"}) == "web:0 stopped"
        assert sup.programs["web"].waiting_for == ()
        write(path, {**programs, "db": {**FATAL, "command": "serve"}})  # db fixed
        await sup.reload()
        await sleep(5)
        assert states(sup) == {"db:0": "running", "web:0": "stopped"}
        assert rt.of("web") == []

    on_supervisor(path, programs, test)


def test_a_start_under_way_starts_no_further_wave_once_shutdown_began(tmp_path: Path) -> None:
    programs = {"db": {"command": "serve", "priority": 1, "autostart": False, **NOTIFY,
                       "ready_timeout": "5m"},
                "web": {"command": "serve", "priority": 2, "autostart": False, **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        loop = asyncio.get_running_loop()
        start = loop.create_task(sup.handle({"cmd": "start", "target": "all"}))  # a connection
        await sleep(1)  # db starts, not ready yet: web's wave waits
        await sup.shutdown()
        await start
        assert [p for p, _ in started(rt)] == ["db"]
        assert rt.current("db").exited.done()

    on_supervisor(tmp_path / "c.yaml", programs, test)
