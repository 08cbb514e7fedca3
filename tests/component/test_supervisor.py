"""The supervisor in-process on the fake runtime: priorities, reload, sampling and limits,
pools, and the control commands, on virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from procpilot.controller import config
from procpilot.controller.control import CommandError
from procpilot.controller.metricsources import MetricError
from procpilot.controller.runtime import Usage
from procpilot.controller.supervisor import Supervisor
from tests.support.fakes import FakeRuntime, run, sleep

QUICK = {"start_seconds": "1s", "stop": {"timeout": "5s"}}


def write(path: Path, programs: dict[str, Any], **top: Any) -> None:
    path.write_text(yaml.safe_dump({"programs": programs, **top}))


@asynccontextmanager
async def supervising(path: Path) -> AsyncIterator[tuple[Supervisor, FakeRuntime]]:
    rt = FakeRuntime(asyncio.get_running_loop())
    sup = Supervisor(config.load(str(path)), str(path), rt)
    sup.start()
    try:
        yield sup, rt
    finally:
        await sup.shutdown()


def on_supervisor(path: Path, programs: dict[str, Any],
                  test: Callable[[Supervisor, FakeRuntime], Coroutine[Any, Any, None]],
                  **top: Any) -> None:
    write(path, programs, **top)

    async def main() -> None:
        async with supervising(path) as (sup, rt):
            await test(sup, rt)

    run(main)


def states(sup: Supervisor) -> dict[str, str]:
    return {i["id"]: i["state"] for p in sup.view().status()["programs"] for i in p["instances"]}


def test_priority_orders_start_and_reverse_stop(tmp_path: Path) -> None:
    programs = {"db": {"command": "serve", "priority": 1, **QUICK},
                "web": {"command": "stubborn", "priority": 2, **QUICK},
                "cron": {"command": "serve", "priority": 2, **QUICK}}
    order: list[tuple[str, float]] = []

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(3)
        starts = {c.program: c.started_at for c in rt.children}
        assert starts == {"db": 0.0, "web": 1.0, "cron": 1.0}  # after db settled
        done = asyncio.get_running_loop().create_task(sup.shutdown())
        await sleep(1)
        order.append(("db stopped", float(rt.current("db").exited.done())))
        await done
        order.append(("db stopped", float(rt.current("db").exited.done())))
        assert rt.current("web").killed  # stubborn: killed at its 5 s timeout, before db went

    on_supervisor(tmp_path / "c.yaml", programs, test)
    assert order == [("db stopped", 0.0), ("db stopped", 1.0)]


def test_reload_adds_removes_changes_scales_and_leaves_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    programs = {"keep": {"command": "serve", **QUICK}, "drop": {"command": "serve", **QUICK},
                "change": {"command": "serve", **QUICK},
                "count": {"command": "serve", "instances": 1, **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        kept, counted = rt.current("keep"), rt.current("count")
        write(path, {"keep": programs["keep"], "new": {"command": "serve", **QUICK},
                     "change": {"command": "serve --other", **QUICK},
                     "count": {"command": "serve", **QUICK, "instances": 3}})
        summary = await sup.reload()
        assert summary == ("reloaded: added ['new'], removed ['drop'], changed "
                           "['change', 'count'], unchanged 1")
        await sleep(3)
        assert rt.current("keep") is kept
        assert rt.current("count") is counted  # a count change only scales
        assert len(rt.of("change")) == 2
        assert "drop" not in sup.programs
        assert sorted(states(sup)) == ["change:0", "count:0", "count:1", "count:2", "keep:0",
                                       "new:0"]
        assert set(states(sup).values()) == {"running"}

    on_supervisor(path, programs, test)


def test_broken_reload_keeps_the_running_config_and_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        path.write_text("programs:\n  web:\n    restrat: {}\n")
        with pytest.raises(CommandError, match="reload refused, running config kept"):
            await sup.reload()
        view = sup.view()
        assert (view.reloads.counts, view.reloads.last_ok) == ({"success": 0, "failure": 1}, False)
        assert "web" in sup.programs
        write(path, {"web": {"command": "serve", **QUICK}})
        await sup.reload()
        assert sup.view().reloads.last_ok

    on_supervisor(path, {"web": {"command": "serve", **QUICK}}, test)


def test_a_program_removed_and_restored_by_quick_reloads_runs_again(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    programs = {"web": {"command": "stubborn", **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        write(path, {})
        await sup.reload()  # web stops (slowly: stubborn)
        write(path, programs)
        await sup.reload()  # back before the stop finished
        await sleep(10)
        assert states(sup) == {"web:0": "running"}
        assert len(rt.of("web")) == 2

    on_supervisor(path, programs, test)


def test_memory_over_the_limit_restarts_at_the_next_check(tmp_path: Path) -> None:
    programs = {"leaky": {"command": "serve", "limits": {"memory": "100MiB",
                                                         "check_interval": "1s"}, **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        rt.current("leaky").usage = Usage(99 * 2**20, 0.0, 0.0)
        await sleep(1.5)
        assert len(rt.of("leaky")) == 1
        rt.current("leaky").usage = Usage(101 * 2**20, 0.0, 0.0)
        await sleep(1.5)
        program = sup.programs["leaky"]
        assert program.restarts == {"memory_limit": 1}
        assert sup.view().programs[0].instances[0].last_exit is not None

    on_supervisor(tmp_path / "c.yaml", programs, test)


def test_control_commands_and_their_refusals(tmp_path: Path) -> None:
    programs = {"web": {"command": "serve", "instances": 2, **QUICK},
                "batch": {"command": "serve", "autostart": False, **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        assert await sup.handle({"cmd": "stop", "target": "web:1"}) == "web:1 stopped"
        assert await sup.handle({"cmd": "start", "target": "batch"}) == "batch:0 running"
        assert await sup.handle({"cmd": "restart", "target": "all"}) == (
            "batch:0 running, web:0 running, web:1 running")
        assert await sup.handle({"cmd": "scale", "target": "web", "count": 1}) == (
            "web: 1 desired, 1 running")
        for request, error in [
            ({"cmd": "stop", "target": "nope"}, "no such program: nope"),
            ({"cmd": "stop", "target": "web:7"}, "no such instance: web:7"),
            ({"cmd": "stop", "target": "web:x"}, "instance must be a number"),
            ({"cmd": "scale", "target": "web", "count": "auto"}, "has no autoscale section"),
            ({"cmd": "logs", "target": "web"}, "logs to the controller's output"),
        ]:
            with pytest.raises(CommandError, match=error):
                await sup.handle(request)  # type: ignore[arg-type]
        assert await sup.handle({"cmd": "shutdown"}) == "shutting down"
        await sleep(0)
        with pytest.raises(CommandError, match="shutting down"):
            await sup.handle({"cmd": "start", "target": "web"})
        status = await sup.handle({"cmd": "status"})
        assert [p["program"] for p in status["programs"]] == ["batch", "web"]

    on_supervisor(tmp_path / "c.yaml", programs, test)


POOL = {"command": "serve", **QUICK,
        "autoscale": {"min": 1, "max": 4, "cpu_target": 0.5, "interval": "10s",
                      "scale_down": {"stabilization": "60s"}},
        "limits": {"check_interval": "1s"}}


def test_busy_pool_grows_to_max_pinned_holds_idle_shrinks_after_stabilization(
    tmp_path: Path,
) -> None:
    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        rt.busy["pool"] = 1.0  # twice the target per worker
        await sleep(80)
        view = sup.view().programs[0]
        assert view.desired == 4
        assert view.pool is not None and view.pool.at_max
        assert view.pool.scale_events == {"up": 2}
        await sup.handle({"cmd": "scale", "target": "pool", "count": 2})
        await sleep(30)
        pool = sup.view().programs[0].pool
        assert pool is not None and (pool.desired, pool.pinned, pool.at_max) == (2, 2, False)
        rt.busy["pool"] = 0.0  # idle from t=110, still pinned
        await sleep(15)
        await sup.handle({"cmd": "scale", "target": "pool", "count": "auto"})
        await sleep(10)
        # The pinned time was measured too, so the first decision sees only the idle
        # interval: no jump back up on the busy samples from before the pin.
        assert sup.view().programs[0].desired <= 2
        await sleep(60)
        assert sup.view().programs[0].desired == 1

    on_supervisor(tmp_path / "c.yaml", {"pool": POOL}, test)


def test_shutdown_while_in_backoff_stops_at_once(tmp_path: Path) -> None:
    programs = {"slow": {"command": "exit 1", **QUICK,
                         "restart": {"delay": "1h", "max_delay": "1h"}},
                "ok": {"command": "serve", **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(2)
        assert sup.view().programs[1].instances[0].backoff_seconds > 3000
        started = asyncio.get_running_loop().time()
        await sup.shutdown()
        assert asyncio.get_running_loop().time() - started < 1
        assert states(sup) == {"ok:0": "stopped", "slow:0": "stopped"}

    on_supervisor(tmp_path / "c.yaml", programs, test)


def test_an_unusable_log_directory_fails_the_start_and_later_groups_still_start(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    programs = {"nolog": {"command": "serve", "priority": 10, **QUICK,
                          "logs": {"directory": str(blocker / "logs")},
                          "restart": {"max_restarts": 0}},
                "after": {"command": "serve", "priority": 20, **QUICK}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(3)
        assert states(sup) == {"after:0": "running", "nolog:0": "fatal"}
        assert [c.program for c in rt.children] == ["after"]  # nothing started for nolog

    on_supervisor(tmp_path / "c.yaml", programs, test)


@pytest.mark.parametrize(("policy", "code", "ends"), [
    ("never", 1, "exited"), ("on-failure", 0, "exited"), ("on-failure", 1, "backoff"),
    ("always", 0, "backoff"),
])
def test_restart_policies(tmp_path: Path, policy: str, code: int, ends: str) -> None:
    programs = {"job": {"command": f"exit {code} 5", **QUICK, "restart": {"policy": policy}}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(5.1)
        assert states(sup) == {"job:0": ends}
        reason = sup.view().programs[0].instances[0].last_exit
        assert reason is not None and reason.reason == "exit"

    on_supervisor(tmp_path / "c.yaml", programs, test)


def test_scale_is_bounded_and_pools_keep_their_range_unless_forced(tmp_path: Path) -> None:
    programs = {"fixed": {"command": "serve", **QUICK}, "pool": POOL}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        with pytest.raises(CommandError, match="at most 10000 instances"):
            await sup.handle({"cmd": "scale", "target": "fixed", "count": 10_001})
        with pytest.raises(CommandError, match=r"outside pool's autoscale bounds \(1\.\.4\)"):
            await sup.handle({"cmd": "scale", "target": "pool", "count": 6})
        assert await sup.handle({"cmd": "scale", "target": "pool", "count": 6,
                                 "force": True}) == "pool: 6 desired, 6 running"
        assert await sup.handle({"cmd": "scale", "target": "fixed", "count": 3}) == (
            "fixed: 3 desired, 3 running")

    on_supervisor(tmp_path / "c.yaml", programs, test)


def backlog_pool(**autoscale: Any) -> dict[str, Any]:
    """A pool on an http backlog (10 per worker), min 0, max 4, and these changes."""
    return {"command": "serve", **QUICK,
            "autoscale": {"min": 0, "max": 4, "interval": "10s",
                          "scale_down": {"stabilization": "30s"},
                          "metrics": [{"type": "http", "url": "http://127.0.0.1:1/q",
                                       "target": 10}], **autoscale}}


BACKLOG = backlog_pool()


def running_workers(sup: Supervisor) -> int:
    return sum(i.state == "running" for i in sup.view().programs[0].instances)


def test_a_backlog_pool_goes_to_zero_and_comes_back_with_work(tmp_path: Path) -> None:
    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        rt.metric_values["http"] = 35.0
        await sleep(12)
        assert sup.view().programs[0].desired == 4  # ceil(35 / 10)
        rt.metric_values["http"] = 0.0
        await sleep(20)
        assert sup.view().programs[0].desired == 4  # held by the 30 s window
        await sleep(20)
        assert (sup.view().programs[0].desired, running_workers(sup)) == (0, 0)
        rt.metric_values["http"] = 3.0  # above activation (0): one worker at the next tick
        await sleep(10)
        assert sup.view().programs[0].desired == 1
        explained = await sup.handle({"cmd": "explain", "target": "pool"})
        assert explained[-1]["reason"] == "activated"
        assert explained[-1]["targets"] == [{"name": "http", "value": 3.0, "utilization": None,
                                             "recommendation": 1, "reason": "activated"}]

    on_supervisor(tmp_path / "c.yaml", {"pool": BACKLOG}, test)


def test_an_unreadable_metric_holds_the_pool_and_is_counted(tmp_path: Path) -> None:
    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        rt.metric_values["http"] = 25.0
        await sleep(12)
        assert sup.view().programs[0].desired == 3
        rt.metric_values["http"] = MetricError("connection refused")
        await sleep(60)
        pool = sup.view().programs[0].pool
        assert pool is not None and sup.view().programs[0].desired == 3  # never down
        assert [(m.name, m.value, m.errors) for m in pool.metrics] == [("http", None, 6)]
        rt.metric_values["http"] = float("nan")  # not a number is a failure too
        await sleep(10)
        again = sup.view().programs[0].pool
        assert again is not None and again.metrics[0].errors == 7

    on_supervisor(tmp_path / "c.yaml", {"pool": BACKLOG}, test)


def test_a_fallback_count_stands_in_for_an_unreadable_metric(tmp_path: Path) -> None:
    pool = backlog_pool(metrics=[{"type": "http", "url": "http://127.0.0.1:1/q", "target": 10,
                                  "fallback": 2}])

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(12)  # nothing scripted: the read fails from the start
        assert sup.view().programs[0].desired == 2

    on_supervisor(tmp_path / "c.yaml", {"pool": pool}, test)


def test_a_changed_autoscale_section_retargets_the_running_pool(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        rt.metric_values["http"] = 40.0
        await sleep(12)
        before = {c.pid for c in rt.children if not c.exited.done()}
        assert len(before) == 4
        write(path, {"pool": backlog_pool(max=2)})
        assert "changed ['pool']" in await sup.reload()
        await sleep(3)
        alive = {c.pid for c in rt.children if not c.exited.done()}
        assert len(alive) == 2 and alive < before  # clamped, no worker restarted
        await sleep(10)
        assert sup.view().programs[0].desired == 2  # and the new max holds

    on_supervisor(path, {"pool": BACKLOG}, test)
