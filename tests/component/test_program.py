"""Program in-process on the fake runtime and virtual time: the state machine carried out.

Every stop by state and cause, restarts and their waiters, backoff and give-up, failed
spawns, OOM kills, leftovers, health checks and scaling, without a single real process.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from procpilot.controller.config import ProgramConfig
from procpilot.controller.hooks import Event
from procpilot.controller.instance import Instance, pick_to_stop
from procpilot.controller.limits import enforce_memory_limit
from procpilot.controller.program import Program, wait_all
from procpilot.controller.runtime import Usage
from procpilot.controller.states import Cause, State
from tests.support.fakes import FakeRuntime, run, sleep

FAST = {"start_seconds": "1s", "stop": {"timeout": "10s"},
        "restart": {"delay": "1s", "factor": 2, "jitter": 0, "max_restarts": 3,
                    "window": "1h", "reset_after": "1h"}}


def program(rt: FakeRuntime, command: str = "serve", on_event: Callable[[Event], None] | None
            = None, **config: Any) -> Program:
    body = {"command": command, **FAST, **config}
    if body.get("ready", "start_seconds") != "start_seconds":
        del body["start_seconds"]  # ready says when instead (and the config refuses both)
    cfg = ProgramConfig.model_validate(body)
    p = Program("web", cfg, rt, on_event)
    p.ensure_instances()
    return p


def on_program(test: Callable[[FakeRuntime], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        await test(FakeRuntime(asyncio.get_running_loop()))

    run(main)


async def brought_to(rt: FakeRuntime, p: Program, state: State) -> Instance:
    """Instance web:0 in the given state, reached the way it happens in real life."""
    inst = p.instances[0]
    if state == State.STOPPED:
        return inst
    if state == State.STARTING:  # spawned, not yet up for start_seconds
        p.start()
        await sleep(0.1)
    elif state == State.RUNNING:
        await wait_all(p.start())
        await sleep(1.5)
    elif state in (State.BACKOFF, State.FATAL, State.EXITED):
        p.config = p.config.model_copy(update={"restart": p.config.restart.model_copy(
            update={"policy": "never" if state == State.EXITED else "always",
                    "max_restarts": 0 if state == State.FATAL else 3})})
        p.start()
        await sleep(0.1)
        rt.current("web").exit(1)
        await sleep(0.01)
    elif state == State.STOPPING:
        p.config = p.config.model_copy(update={"command": ("stubborn",)})
        await wait_all(p.start())
        p.stop_for(inst, "stop")
    assert inst.state == state
    return inst


# What stop_for(cause) leads to from each state, once the dust settles (and what was
# counted as a restart). Running and starting processes exit on the stop signal.
CASES: list[tuple[State, Cause, State, str | None]] = [
    (State.STOPPED, "stop", State.STOPPED, None),
    (State.STOPPED, "manual", State.STOPPED, None),
    (State.STOPPED, "memory_limit", State.STOPPED, None),
    (State.STARTING, "stop", State.STOPPED, None),
    (State.STARTING, "manual", State.RUNNING, "manual"),
    (State.STARTING, "memory_limit", State.BACKOFF, "memory_limit"),
    (State.STARTING, "health", State.BACKOFF, "health"),
    (State.RUNNING, "stop", State.STOPPED, None),
    (State.RUNNING, "manual", State.RUNNING, "manual"),
    (State.RUNNING, "memory_limit", State.BACKOFF, "memory_limit"),
    (State.RUNNING, "health", State.BACKOFF, "health"),
    (State.BACKOFF, "stop", State.STOPPED, None),
    (State.BACKOFF, "manual", State.RUNNING, None),
    (State.BACKOFF, "health", State.STOPPED, None),
    (State.EXITED, "stop", State.STOPPED, None),
    (State.EXITED, "manual", State.RUNNING, None),
    (State.FATAL, "stop", State.STOPPED, None),
    (State.FATAL, "manual", State.RUNNING, None),
    (State.FATAL, "memory_limit", State.STOPPED, None),
]


@pytest.mark.parametrize(("state", "cause", "ends", "counted"), CASES)
def test_stop_by_state_and_cause(state: State, cause: Cause, ends: State,
                                 counted: str | None) -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt)
        inst = await brought_to(rt, p, state)
        before = dict(p.restarts)
        p.stop_for(inst, cause)
        await sleep(0.5 if ends == State.BACKOFF else 2.0)
        assert inst.state == ends
        new = {k: v - before.get(k, 0) for k, v in p.restarts.items() if v != before.get(k, 0)}
        assert new == ({counted: 1} if counted else {})

    on_program(test)


def test_while_stopping_the_operators_latest_word_wins() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt)
        inst = await brought_to(rt, p, State.STOPPING)
        p.stop_for(inst, "manual")
        p.stop_for(inst, "health")  # not the operator's: ignored
        assert inst.cause == "manual"
        await sleep(10.5)  # the stubborn process is killed at the stop timeout...
        assert rt.of("web")[0].killed
        assert (inst.state, len(rt.of("web"))) == (State.STARTING, 2)  # ...and started again


def test_stop_before_the_spawn_ran_means_it_never_runs() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt)
        p.start()
        p.stop_for(p.instances[0], "stop")
        await sleep(5)
        assert (p.instances[0].state, rt.children) == (State.STOPPED, [])

    on_program(test)


def test_a_process_ignoring_the_stop_signal_is_killed_at_the_timeout() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, "stubborn", stop={"timeout": "10s", "signal": "INT"})
        await wait_all(p.start())
        child = rt.current("web")
        stop_at = asyncio.get_running_loop().time()
        stopped = p.stop()
        await sleep(9.9)
        assert (child.signals, child.killed) == ([signal.SIGINT], False)
        await wait_all(stopped)
        assert child.killed
        assert asyncio.get_running_loop().time() == pytest.approx(stop_at + 10)
        assert p.instances[0].last_exit is not None
        assert p.instances[0].last_exit.reason == "stopped"

    on_program(test)


def test_after_a_stop_leftovers_may_finish_until_the_timeout() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt)
        await wait_all(p.start())
        child = rt.current("web")
        child.leftovers = True
        await wait_all(p.stop())  # the main process ends at once on SIGTERM
        assert not child.killed  # its group may finish...
        await sleep(10)
        assert child.killed  # ...until the stop timeout

    on_program(test)


def test_leftovers_of_a_crash_are_killed_at_once() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt)
        await wait_all(p.start())
        child = rt.current("web")
        child.leftovers = True
        child.exit(3)
        await sleep(0)
        assert child.killed

    on_program(test)


def test_crash_loop_backs_off_doubling_then_goes_fatal_and_start_revives() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, "exit 3")
        inst = p.instances[0]
        await wait_all(p.start())
        await sleep(60)
        assert inst.state == State.FATAL
        assert [round(c.started_at, 2) for c in rt.of("web")] == [0.0, 1.0, 3.0, 7.0]
        assert p.restarts == {"failed_start": 3}
        assert p.exit_code == 3
        await wait_all(p.start())  # fatal until started again
        assert len(rt.of("web")) == 5

    on_program(test)


def test_a_program_that_cannot_start_is_a_failed_start_with_127() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, "missing", restart={"policy": "never"})
        await wait_all(p.start())
        inst = p.instances[0]
        assert inst.state == State.EXITED
        assert p.exit_code == 127
        assert inst.last_exit is not None and inst.last_exit.reason == "failed_start"

    on_program(test)


def test_sigkill_with_oom_evidence_is_an_oom_kill() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt)
        await wait_all(p.start())
        await sleep(2)
        child = rt.current("web")
        child.oom = True
        child.exit(None, signal.SIGKILL)
        await sleep(0)
        assert p.restarts == {"oom_kill": 1}
        assert p.exit_code == 128 + signal.SIGKILL

    on_program(test)


def test_restart_waiters_resolve_once_settled_again() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, instances=2)
        await wait_all(p.start())
        first = rt.current("web", 1)
        assert await wait_all(p.restart(1)) == [State.RUNNING]  # stopped, started, up again
        assert rt.current("web", 1) is not first
        assert p.restarts == {"manual": 1}
        assert [len(rt.of("web", i)) for i in (0, 1)] == [1, 2]

    on_program(test)


def test_health_failures_in_a_row_restart() -> None:
    async def test(rt: FakeRuntime) -> None:
        answers = iter([True, False, False, True, False, False, False])
        rt.health = lambda program: next(answers, True)
        p = program(rt, health={"exec": "check", "interval": "1s", "failure_threshold": 3})
        await wait_all(p.start())
        await sleep(4.5)
        assert p.restarts == {}  # two failures, then a pass: the count starts again
        await sleep(3)
        assert p.restarts == {"health": 1}

    on_program(test)


def test_scale_down_retires_the_newest_and_up_reuses_the_lowest_slots() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, instances=3)
        await wait_all(p.start())
        await sleep(2)
        await wait_all(p.restart(0))  # slot 0 is now the newest running process
        await sleep(2)
        await wait_all(p.scale(1))
        assert sorted(p.instances) == [2]
        await wait_all(p.scale(3))
        assert sorted(p.instances) == [0, 1, 2]
        await sleep(2)
        assert {i.state for i in p.instances.values()} == {State.RUNNING}

    on_program(test)


def test_record_keeps_the_last_measurement_and_program_cpu_only_grows() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt)
        await wait_all(p.start())
        child = rt.current("web")
        child.usage = Usage(4096, 1.0, 0.5)
        p.record(rt.measure([child]), 5.0)
        child.usage = Usage(8192, 3.0, 0.5)
        p.record(rt.measure([child]), 6.0)
        run_ = p.instances[0].run
        assert run_ is not None and (run_.rss_bytes, run_.sampled_at) == (8192, 6.0)
        assert (p.cpu_user, p.cpu_system) == (3.0, 0.5)
        await wait_all(p.restart())
        rt.current("web").usage = Usage(4096, 0.25, 0.0)  # a new process starts from 0
        p.record(rt.measure([rt.current("web")]), 7.0)
        assert (p.cpu_user, p.cpu_system) == (3.25, 0.5)

    on_program(test)


def test_pick_to_stop_takes_the_newest_first() -> None:
    instances = [("web-0", 10.0), ("web-3", 50.0), ("web-1", 20.0), ("web-2", 50.0)]
    assert pick_to_stop(instances, 3) == ["web-3", "web-2", "web-1"]
    assert pick_to_stop(instances, 0) == []
    assert pick_to_stop(instances, 9) == ["web-3", "web-2", "web-1", "web-0"]


@pytest.mark.parametrize(("kernel", "keepers"), [
    (frozenset(), {"memory": "polled", "cpu": "not enforced", "tasks": "not enforced",
                   "nofile": "process", "umask": "process"}),
    (frozenset({"memory", "cpu", "tasks"}), {"memory": "kernel", "cpu": "kernel",
                                              "tasks": "kernel", "nofile": "process",
                                              "umask": "process"}),
])
def test_each_limit_says_who_keeps_it(kernel: frozenset[str], keepers: dict[str, str]) -> None:
    async def test(rt: FakeRuntime) -> None:
        rt.enforceable = kernel
        p = program(rt, limits={"memory": "64MiB", "cpu": 0.5, "tasks": 10, "nofile": 100,
                                "umask": "022"})
        assert {lim.kind: lim.enforced for lim in p.limits()} == keepers
        await wait_all(p.start())
        assert rt.current("web").confinement.limits.tasks == 10

    on_program(test)


def test_memory_is_polled_only_where_the_kernel_does_not_keep_it() -> None:
    async def test(rt: FakeRuntime) -> None:
        for kernel, restarts in ((frozenset({"memory"}), {}), (frozenset(), {"memory_limit": 1})):
            rt.enforceable = kernel
            p = program(rt, limits={"memory": "64MiB"})
            await wait_all(p.start())
            rt.children[-1].usage = Usage(65 << 20, 0.0, 0.0)
            p.record(rt.measure([rt.children[-1]]), 1.0)
            enforce_memory_limit(p)
            await sleep(0.5)
            assert p.restarts == restarts

    on_program(test)


def test_a_failed_spawn_keeps_why_for_status() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, "missing", restart={"policy": "never"})
        await wait_all(p.start())
        last = p.view().instances[0].status()["last_exit"]
        assert last is not None and last["error"] == "[Errno 2] no such executable: 'missing'"

    on_program(test)


def test_thousands_of_starts_leave_the_loop_free_between_batches() -> None:
    async def test(rt: FakeRuntime) -> None:
        p = program(rt, instances=1000)
        p.start()
        spawned = []
        for _ in range(3):
            await asyncio.sleep(0)  # one loop turn: anything else waiting runs here
            spawned.append(len(rt.children))
        assert spawned == [16, 32, 48]
        await wait_all(p.stop())  # a stop in the middle: the rest is never spawned
        await sleep(1)
        assert len(rt.children) < 100

    on_program(test)
