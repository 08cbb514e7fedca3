"""One slot of a program (``<program>:<index>``): its state and the process running in it.

An :class:`Instance` outlives its processes: it keeps the state machine's books (state,
the backoff, restarts, the last exit, its last lines of output) across them. What belongs
to one process only (the child, when it started and became ready, its stop deadline, its
health check and watchdog, what it said over NOTIFY_SOCKET, its measurements) is a
:class:`Run`, replaced at each start. During a rolling restart with surge, the process
being replaced is one of the instance's ``old`` runs until it is gone.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from procpilot.controller.backoff import Backoff
from procpilot.controller.logsink import TAIL_LINES, Sink
from procpilot.controller.runtime import Child
from procpilot.controller.states import Cause, State
from procpilot.controller.view import InstanceView, LastExit

T = TypeVar("T")


@dataclass(eq=False)
class Run:
    """One process of an instance, from its start to its exit."""

    child: Child
    started: float  # loop clock at spawn
    stop_deadline: float | None = None  # while stopping: when the group gets SIGKILL
    ready_at: float | None = None  # loop clock when it became ready (running)
    stopping: bool = False  # it said STOPPING=1: no longer ready
    status_text: str | None = None  # the last STATUS= it sent
    health: asyncio.Task[None] | None = None
    watchdog: asyncio.TimerHandle | None = None  # restarts it unless WATCHDOG=1 comes first
    # The last measurement of its process tree (None until the first):
    rss_bytes: int | None = None
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    cpu_throttled: float = 0.0
    cgroup_memory_bytes: int | None = None
    tasks: int | None = None
    sampled_at: float | None = None  # loop clock of that measurement

    def end(self) -> None:
        """Its checks end with it (or when it is being replaced)."""
        if self.health is not None:
            self.health.cancel()
            self.health = None
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None


class Waiters:
    """Futures waiting for an instance to reach a state (procpilotctl waits on these)."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Callable[[State], bool], asyncio.Future[State]]] = []

    def add(self, done: Callable[[State], bool], fut: asyncio.Future[State]) -> None:
        self._waiting.append((done, fut))

    def notify(self, state: State) -> None:
        still = []
        for done, fut in self._waiting:
            if fut.done():  # given up on (cancelled)
                continue
            if done(state):
                fut.set_result(state)
            else:
                still.append((done, fut))
        self._waiting = still


class Changes:
    """Wakes whoever waits for the next change of something (a program's instances, the
    supervisor's config) without saying what changed: the waiter looks again."""

    def __init__(self) -> None:
        self._next: asyncio.Future[None] | None = None

    def next(self) -> asyncio.Future[None]:
        """Resolves at the next notify(); wait on it with asyncio.wait, which does not
        cancel it (others share it)."""
        if self._next is None or self._next.done():
            self._next = asyncio.get_running_loop().create_future()
        return self._next

    def notify(self) -> None:
        if self._next is not None and not self._next.done():
            self._next.set_result(None)
        self._next = None


@dataclass(eq=False)
class Instance:
    program: str
    index: int
    state: State = State.STOPPED
    run: Run | None = None  # the process in this slot, from spawn until it exited
    cause: Cause | None = None  # why the controller expects the current process to exit
    backoff: Backoff = field(default_factory=Backoff)
    backoff_until: float | None = None  # loop clock at which a backoff ends
    restarts: int = 0
    last_exit: LastExit | None = None
    retire: bool = False  # scaled away: removed once stopped
    output: tuple[Sink, Sink | None] | None = None  # where its processes' stdout, stderr go
    tail: deque[bytes] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    timer: asyncio.Handle | None = None  # spawn, ready, ready timeout, backoff or kill
    waiters: Waiters = field(default_factory=Waiters)
    old: list[Run] = field(default_factory=list)  # replaced processes not yet gone (surge)

    @property
    def id(self) -> str:
        return f"{self.program}:{self.index}"

    @property
    def pid(self) -> int | None:
        return self.run.child.pid if self.run else None

    @property
    def serving(self) -> Run | None:
        """The replaced process that still serves while its successor gets ready (surge)."""
        return next((r for r in self.old if r.stop_deadline is None and not r.stopping), None)

    @property
    def ready(self) -> bool:
        """Whether it serves: its process is ready (running, and has not said STOPPING=1),
        or, during a surge, the process it replaces still does."""
        run = self.run
        current = self.state == State.RUNNING and run is not None and not run.stopping
        return current or self.serving is not None

    def view(self, now: float, wall: float) -> InstanceView:
        """Its books and its process's, at loop time now (unix time wall)."""
        run, serving = self.run, self.serving
        return InstanceView(
            id=self.id,
            state=self.state.value,
            pid=self.pid,
            uptime_seconds=round(now - run.started, 3) if run else None,
            restarts=self.restarts,
            rss_bytes=run.rss_bytes if run else None,
            backoff_seconds=max(0.0, self.backoff_until - now) if self.backoff_until else 0.0,
            last_exit=self.last_exit,
            started_at=wall - (now - run.started) if run else None,
            cgroup_memory_bytes=run.cgroup_memory_bytes if run else None,
            tasks=run.tasks if run else None,
            ready=self.ready,
            status_text=run.status_text if run else None,
            replacing=serving.child.pid if serving else None,
        )

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def pick_to_stop(instances: Sequence[tuple[T, float]], count: int) -> list[T]:
    """The ``count`` newest instances, given (instance, start time) pairs.

    The newest have the least warm state (caches, connections) to lose, and a crash-looping
    instance restarts often, so it is among the first to go. Ties keep the input order.
    """
    newest_first = sorted(instances, key=lambda pair: pair[1], reverse=True)
    return [instance for instance, _ in newest_first[: max(0, count)]]
