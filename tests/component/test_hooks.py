"""Hooks on the fake runtime: which events reach which hooks with what, the bound on how
many run at once, timeouts, failures counted, and supervision never waiting for them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from procpilot.controller.config import Hook
from procpilot.controller.hooks import CONCURRENCY, QUEUE_LIMIT
from procpilot.controller.metrics import hook_families
from procpilot.controller.supervisor import Supervisor
from tests.component.test_supervisor import QUICK, on_supervisor
from tests.support.fakes import FakeRuntime, sleep

PAGE = {"events": ["fatal", "memory_kill"], "url": "http://127.0.0.1:9/page"}
CLEANUP = {"events": ["exited"], "command": ["cleanup", "--all"], "timeout": "5s"}


def test_each_hook_gets_the_events_it_listens_for(tmp_path: Path) -> None:
    programs = {"web": {"command": "serve", **QUICK, "hooks": [CLEANUP]},
                "job": {"command": "exit 2 2", **QUICK, "restart": {"max_restarts": 0}}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sleep(3)
        assert [(h.kind, e["event"], e["instance"]) for h, e, _ in rt.delivered] == [
            ("webhook", "fatal", "job:0")]  # the top-level hook hears every program
        rt.current("web").say("bye\n")
        rt.current("web").oom = True
        rt.current("web").exit(None, 9)
        await sleep(0.1)
        heard = [(h.kind, e["event"]) for h, e, _ in rt.delivered[1:]]
        assert heard == [("command", "exited"), ("webhook", "memory_kill")]
        _, event, env = rt.delivered[1]
        assert {k: event[k] for k in ("program", "instance", "state", "reason", "exit_code",
                                       "log_tail")} == {
            "program": "web", "instance": "web:0", "state": "backoff", "reason": "oom_kill",
            "exit_code": 137, "log_tail": ["bye"]}
        assert {k: env[k] for k in ("PROCPILOT_EVENT", "PROCPILOT_INSTANCE",
                                    "PROCPILOT_REASON", "PROCPILOT_EXIT_CODE")} == {
            "PROCPILOT_EVENT": "exited", "PROCPILOT_INSTANCE": "web:0",
            "PROCPILOT_REASON": "oom_kill", "PROCPILOT_EXIT_CODE": "137"}

    on_supervisor(tmp_path / "c.yaml", programs, test, hooks=[PAGE])


def test_scaling_is_an_event_of_the_program(tmp_path: Path) -> None:
    programs = {"web": {"command": "serve", **QUICK,
                        "hooks": [{"events": ["scaled"], "command": "note"}]}}

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        await sup.handle({"cmd": "scale", "target": "web", "count": 3})
        await sleep(0)
        [(_, event, _)] = rt.delivered
        assert (event["event"], event["instance"], event["desired"]) == ("scaled", None, 3)

    on_supervisor(tmp_path / "c.yaml", programs, test)


def test_hooks_run_a_few_at_a_time_time_out_and_are_counted_never_waited_for(
    tmp_path: Path,
) -> None:
    slow = {"events": ["started"], "command": "slow", "timeout": "10s"}
    programs = {"many": {"command": "serve", "instances": 20, **QUICK, "hooks": [slow]}}
    running: list[int] = []
    at_once = 0

    async def hang(hook: Hook, event: dict[str, Any]) -> None:
        nonlocal at_once
        running.append(1)
        at_once = max(at_once, len(running))
        try:
            await asyncio.sleep(3600)
        finally:
            running.pop()

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        rt.hook = hang
        await sleep(2)
        assert all(i.state.value == "running" for i in sup.programs["many"].instances.values())
        await sleep(60)
        view = sup.view()
        assert view.hook_runs == {"command": 20}
        assert view.hook_failures == {("command", "timeout"): 20}
        assert at_once == CONCURRENCY
        families = {f.name: {tuple(s.labels.values()): s.value for s in f.samples}
                    for f in hook_families(view)}
        assert families["procpilot_controller_hook_failures"][("command", "timeout")] == 20
        assert families["procpilot_controller_hook_failures"][("webhook", "dropped")] == 0

    on_supervisor(tmp_path / "c.yaml", programs, test)


def test_a_full_queue_drops_and_counts_and_failures_are_counted(tmp_path: Path) -> None:
    programs = {"many": {"command": "serve", "instances": QUEUE_LIMIT + 10, **QUICK,
                         "hooks": [{"events": ["started"], "url": "http://127.0.0.1:9/"}]}}

    async def refuse(hook: Hook, event: dict[str, Any]) -> None:
        from procpilot.controller.runtime import HookFailed

        await asyncio.sleep(1)
        raise HookFailed("HTTP status 500")

    async def test(sup: Supervisor, rt: FakeRuntime) -> None:
        rt.hook = refuse
        await sleep(0.1)  # 1016 starts in one burst (64 turns of 16): more than fit
        await sleep(1000)
        failures = sup.view().hook_failures
        assert failures[("webhook", "dropped")] > 0
        assert failures[("webhook", "error")] + failures[("webhook", "dropped")] \
            == QUEUE_LIMIT + 10

    on_supervisor(tmp_path / "c.yaml", programs, test)
