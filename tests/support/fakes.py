"""The fake clocks and the fake runtime: programs, the supervisor and pools in-process.

:class:`Clock` is the time source of the pure tests (they pass times in).
:class:`VirtualTimeLoop` is a real asyncio loop whose clock jumps to the next timer
instead of sleeping, so a 10 s stop timeout or a 5 minute stabilization window passes at
once while every callback still runs in the order real time would give it.

:class:`FakeRuntime` stands in for processes. A program's command says how its fake
process behaves (argv[0]):

- ``serve`` (or anything unknown): runs until a signal ends it;
- ``stubborn``: ignores every signal but SIGKILL;
- ``exit CODE [AFTER]``: exits with CODE after AFTER seconds (default 0);
- ``missing``: cannot be started (SpawnFailed, as for a missing executable).

Tests also end processes themselves (``child.exit(...)``), send what a program would send
over NOTIFY_SOCKET (``child.notify("READY=1")``), write output (``child.say(...)``), set
measurements (``child.usage``), mark OOM kills (``child.oom``), and script health checks
(``runtime.health``) and hooks (``runtime.hook``; every delivery is in
``runtime.delivered``). Listening sockets are numbers in ``runtime.listening``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import selectors
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from procpilot.controller.autoscaleconfig import TotalMetric
from procpilot.controller.config import Health, Hook
from procpilot.controller.confinement import Confinement
from procpilot.controller.logsink import LogFiles, Sink
from procpilot.controller.metricsources import MetricError
from procpilot.controller.notify import parse
from procpilot.controller.runtime import Child, OnNotice, SpawnFailed, Usage
from procpilot.controller.spawn import SpawnSpec
from procpilot.controller.states import ExitStatus

T = TypeVar("T")
WALL_AT_ZERO = 1_700_000_000.0  # unix time when the virtual clock reads 0


class Clock:
    """A clock that moves only when told: the time source of the pure unit tests."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready:
            if timeout is None:
                raise RuntimeError("deadlock: nothing is scheduled and nothing can happen")
            self._loop.now += timeout  # nothing to do until the next timer: go there
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time (``loop.time()`` starts at 0)."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run main() to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


async def sleep(seconds: float) -> None:
    """Let virtual time pass (every timer due meanwhile fires)."""
    await asyncio.sleep(seconds)


class FakeChild:
    def __init__(self, rt: FakeRuntime, spec: SpawnSpec, pid: int, sink: Sink,
                 confinement: Confinement, *, stderr: Sink | None = None,
                 notify: OnNotice | None = None) -> None:
        self.rt = rt
        self.spec = spec
        self.confinement = confinement
        self._pid = pid
        self.sink = sink
        self.stderr = stderr
        self.notify_to = notify
        self._exited: asyncio.Future[ExitStatus] = rt.loop.create_future()
        self.signals: list[int] = []
        self.killed = False  # kill() was called
        self.oom = False  # the kernel's OOM killer will be said to have ended it
        self.leftovers = False  # something of it outlives the main process until killed
        self.usage: Usage | None = None
        self.started_at = rt.loop.time()
        self.measured_at = self.started_at

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def exited(self) -> asyncio.Future[ExitStatus]:
        return self._exited

    @property
    def program(self) -> str:
        return (self.spec.env or {}).get("PROCPILOT_PROGRAM", "")

    @property
    def behaviour(self) -> str:
        return str(self.spec.argv[0])

    def exit(self, code: int | None = 0, sig: int | None = None) -> None:
        """The main process ends now (if it has not yet)."""
        if not self._exited.done():
            self._exited.set_result(ExitStatus(code, sig))

    def notify(self, message: str) -> None:
        """What the program would send over NOTIFY_SOCKET (it must have been given one)."""
        assert self.notify_to is not None, "started without NOTIFY_SOCKET"
        self.notify_to(parse(message.encode()))

    def say(self, text: str, stderr: bool = False) -> None:
        """Whole lines of output, as the pipe reader hands them over."""
        sink = self.stderr if stderr and self.stderr is not None else self.sink
        sink.write(text.encode(), complete=True)

    def signal(self, sig: int) -> bool:
        self.signals.append(sig)
        if self._exited.done() and not self.leftovers:
            return False
        if sig == signal.SIGKILL or self.behaviour != "stubborn":
            self.rt.loop.call_soon(self.exit, None, sig)
        return True

    def kill(self) -> None:
        self.killed = True
        self.leftovers = False
        self.signal(signal.SIGKILL)

    def finish(self, deadline: float) -> asyncio.Future[None] | None:
        if not self.leftovers:
            return None
        done: asyncio.Future[None] = self.rt.loop.create_future()

        def at_deadline() -> None:
            self.kill()
            done.set_result(None)

        self.rt.loop.call_at(deadline, at_deadline)
        return done

    def oom_killed(self) -> bool:
        return self.oom

    def drain(self) -> None:
        """Output is written at once here: nothing waits in a pipe."""

    @property
    def kernel_limits(self) -> frozenset[str]:
        return self.rt.enforceable & self.confinement.limits.kinds()

    @property
    def accounted(self) -> bool:
        return bool(self.rt.enforceable)


class FakeListener:
    def __init__(self, rt: FakeRuntime, address: str) -> None:
        self.rt = rt
        self.address = address
        self.fd = rt.listening[address]

    def close(self) -> None:
        del self.rt.listening[self.address]


@dataclass
class FakeRuntime:
    loop: asyncio.AbstractEventLoop
    logs: LogFiles = field(default_factory=LogFiles)
    children: list[FakeChild] = field(default_factory=list)
    # (program name from the environment, health check) -> answer; default healthy
    health: Callable[[str], bool] = lambda program: True
    host_busy: float | None = None
    busy: dict[str, float] = field(default_factory=dict)  # program -> cores each process uses
    metric_values: dict[str, float | MetricError] = field(default_factory=dict)  # by name
    orphans: int = 0
    installed: bool = False
    enforceable: frozenset[str] = frozenset()  # what a fake cgroup backend would enforce
    isolation: str = "none"
    leftovers_killed: int = 0
    notifications_rejected: int = 0
    told: list[str] = field(default_factory=list)  # sd_notify states for the manager
    listening: dict[str, int] = field(default_factory=dict)  # address -> fake fd, while open
    hook: Callable[[Hook, dict[str, Any]], Awaitable[None]] | None = None  # default: success
    delivered: list[tuple[Hook, dict[str, Any], Mapping[str, str]]] = field(default_factory=list)
    _pids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _fds: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def wall(self) -> float:
        return WALL_AT_ZERO + self.loop.time()

    def rand(self) -> float:
        return 0.5  # no jitter: backoff delays are exactly delay * factor**n

    def start(self, spec: SpawnSpec, sink: Sink, confinement: Confinement, *,
              stderr: Sink | None = None, notify: OnNotice | None = None) -> Child:
        argv = [str(a) for a in spec.argv]
        if argv[0] == "missing":
            raise SpawnFailed(f"[Errno 2] no such executable: {argv[0]!r}")
        for _, fd in spec.sockets:
            assert fd in self.listening.values(), "passed a socket that is not listening"
        child = FakeChild(self, spec, next(self._pids), sink, confinement, stderr=stderr,
                          notify=notify)
        self.children.append(child)
        if argv[0] == "exit":
            code = int(argv[1])
            after = float(argv[2]) if len(argv) > 2 else 0.0
            self.loop.call_later(after, child.exit, code)
        return child

    def listen(self, address: str) -> FakeListener:
        if address.endswith(":1"):  # a port this fake cannot have
            raise OSError(98, "Address already in use")
        self.listening[address] = next(self._fds)
        return FakeListener(self, address)

    async def healthy(self, check: Health, spec: SpawnSpec) -> bool:
        env = spec.env or {}
        return self.health(env.get("PROCPILOT_PROGRAM", ""))

    async def deliver(self, hook: Hook, body: bytes, env: Mapping[str, str]) -> None:
        event = json.loads(body)
        self.delivered.append((hook, event, env))
        if self.hook is not None:
            await self.hook(hook, event)

    def measure(self, children: Sequence[Child]) -> dict[int, Usage]:
        """Each child's ``usage``; with ``busy`` set for its program, CPU accrues at that rate."""
        out = {}
        now = self.loop.time()
        for child in children:
            assert isinstance(child, FakeChild)
            if child.exited.done():
                continue
            cores = self.busy.get(child.program)
            if cores is not None:
                used = child.usage or Usage(2**20, 0.0, 0.0)
                child.usage = Usage(used.rss_bytes,
                                    used.cpu_user + cores * (now - child.measured_at), 0.0)
            child.measured_at = now
            if child.usage is not None:
                out[child.pid] = child.usage
        return out

    def host_busy_seconds(self) -> float | None:
        return self.host_busy

    async def read_metric(self, metric: TotalMetric) -> float:
        """What ``metric_values`` says for the metric's name (a MetricError is raised)."""
        value = self.metric_values.get(metric.target_of().name,
                                       MetricError("nothing scripted for it"))
        if isinstance(value, MetricError):
            raise value
        return value

    # What the supervisor needs beyond programs.
    def install(self) -> None:
        self.installed = True

    def close(self) -> None:
        self.logs.close_all()

    def tell_manager(self, state: str) -> None:
        self.told.append(state)

    @property
    def reaped_orphans(self) -> int:
        return self.orphans

    async def wind_down(self, drain_bound: float, output_bound: float) -> None:
        return None

    # Helpers for tests.
    def of(self, program: str, index: int = 0) -> list[FakeChild]:
        """Every process started for PROGRAM:INDEX, oldest first."""
        return [c for c in self.children if c.program == program
                and (c.spec.env or {}).get("PROCPILOT_INSTANCE") == str(index)]

    def current(self, program: str, index: int = 0) -> FakeChild:
        """The newest process of PROGRAM:INDEX."""
        return self.of(program, index)[-1]

