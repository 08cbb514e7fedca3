"""Hooks: commands and webhooks run on instance events (started, ready, exited, backoff,
fatal, memory_kill, scaled), for paging and clean-up, never in supervision's way.

Programs emit :class:`Event` values and return at once. Each matching hook becomes a job
in one bounded queue; at most :data:`CONCURRENCY` jobs run at a time, each within its
hook's timeout (a command is killed with its process group). A job that fails, times out,
or finds the queue full (:data:`QUEUE_LIMIT`) is logged and counted, and that is all:
hooks are not retried, so a receiver that is down loses those events.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from procpilot.controller.config import Hook
from procpilot.controller.runtime import HookFailed, Runtime

log = logging.getLogger("procpilot.hooks")
CONCURRENCY = 4
QUEUE_LIMIT = 1000
FAILURE_REASONS = ("error", "timeout", "dropped")


@dataclass(frozen=True)
class Event:
    """One event, as a hook receives it (the JSON body, or PROCPILOT_* variables)."""

    event: str
    program: str
    instance: str | None  # PROGRAM:INDEX; None for scaled
    state: str | None  # the instance's state after the event; None for scaled
    time: float  # unix seconds
    pid: int | None = None
    reason: str | None = None  # exited, backoff, fatal, memory_kill: why it exited
    exit_code: int | None = None  # the status as a shell reports it (signal n: 128+n)
    log_tail: tuple[str, ...] = ()  # the instance's last lines of output
    desired: int | None = None  # scaled: the new count

    def body(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def environment(self) -> dict[str, str]:
        """PROCPILOT_EVENT, _PROGRAM, _INSTANCE, _STATE, _PID, _REASON, _EXIT_CODE, _DESIRED
        for the fields that are set, and the whole event as PROCPILOT_EVENT_JSON."""
        env = {f"PROCPILOT_{key.upper()}": str(value) for key, value in asdict(self).items()
               if value is not None and key not in ("time", "log_tail")}
        env["PROCPILOT_EVENT_JSON"] = self.body().decode()
        return env


class Hooks:
    """The queue of hook jobs and the books metrics read."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.runs: Counter[str] = Counter()  # by kind: command, webhook
        self.failures: Counter[tuple[str, str]] = Counter()  # by (kind, reason)
        self._queue: deque[tuple[Hook, Event]] = deque()
        self._running: set[asyncio.Task[None]] = set()

    def emit(self, hooks: Sequence[Hook], event: Event) -> None:
        """Queue every hook that listens for this event; never waits."""
        for hook in hooks:
            if event.event not in hook.events:
                continue
            if len(self._queue) >= QUEUE_LIMIT:
                self._failed(hook, event, "dropped", f"more than {QUEUE_LIMIT} hooks waiting")
                continue
            self._queue.append((hook, event))
        self._pump()

    def _pump(self) -> None:
        while self._queue and len(self._running) < CONCURRENCY:
            hook, event = self._queue.popleft()
            task = self.rt.loop.create_task(self._run(hook, event))
            self._running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._pump()

    async def _run(self, hook: Hook, event: Event) -> None:
        self.runs[hook.kind] += 1
        try:
            await asyncio.wait_for(self.rt.deliver(hook, event.body(), event.environment()),
                                   hook.timeout)
        except TimeoutError:
            self._failed(hook, event, "timeout", f"no answer within {hook.timeout}s")
        except HookFailed as e:
            self._failed(hook, event, "error", str(e))

    def _failed(self, hook: Hook, event: Event, reason: str, why: str) -> None:
        self.failures[hook.kind, reason] += 1
        log.warning("hook failed", extra={"fields": {
            "hook": hook.kind, "event": event.event, "program": event.program,
            "instance": event.instance, "reason": reason, "err": why}})

    async def close(self, bound: float) -> None:
        """At shutdown: let queued and running hooks finish for up to ``bound`` seconds."""
        deadline = self.rt.loop.time() + bound
        while self._running and self.rt.loop.time() < deadline:
            await asyncio.wait(list(self._running), timeout=deadline - self.rt.loop.time())
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        for hook, event in self._queue:
            self._failed(hook, event, "dropped", "the controller stopped")
        self._queue.clear()
