"""A supervised program: its instances, their state machine, and every timer they need.

Everything here runs on the event loop thread; waiting is a loop timer (``call_later``) or a
future, never a sleep, so a program in backoff holds up nothing. The decisions (what an exit
means, how long to back off) are the pure functions of ``states`` and ``backoff``; this module
only carries them out: spawn, signal, arm timers, keep the books that status and metrics read.

When an instance's main process exits on its own, whatever is left of its process group is
SIGKILLed at once: leftovers of a crashed instance would otherwise pile up across restarts
(and keep its output pipe open). When it exits after the controller sent the stop signal,
the rest of the group (which got the signal too) may finish until the stop timeout, then
gets SIGKILL: a shell wrapper dying first must not cut its children's clean shutdown short.
Processes that left the group (setsid) are not chased; as the controller is a subreaper
they are still reaped when they exit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from procpilot.controller import health, states
from procpilot.controller.autoscale import pick_to_stop
from procpilot.controller.backoff import Backoff
from procpilot.controller.config import Program as ProgramConfig
from procpilot.controller.logsink import LogFiles, PipeReader, PrefixedStream, Sink
from procpilot.controller.reaper import ExitStatus, Reaper
from procpilot.controller.spawn import Child, SpawnSpec, signal_group, spawn
from procpilot.controller.states import Cause, Exit, State
from procpilot.controller.usage import CpuMeter
from procpilot.controller.view import InstanceView, LastExit, PoolView, ProgramView
from procpilot.core.procfs import FS, Proc
from procpilot.core.procfs.vmstat import read_oom_kills

log = logging.getLogger("procpilot.program")

FAILED_SPAWN_CODE = 127  # what a shell reports for a command it cannot run


@dataclass
class Runtime:
    """What programs share: the loop, the reaper, open log files, clocks and randomness."""

    loop: asyncio.AbstractEventLoop
    reaper: Reaper
    logfiles: LogFiles
    fs: FS
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    rand: Callable[[], float] = random.random


@dataclass(eq=False)
class Instance:
    """One slot of a program (``<program>:<index>``) across the processes run in it."""

    program: str
    index: int
    state: State = State.STOPPED
    child: Child | None = None
    started: float = 0.0  # runtime clock at spawn
    started_wall: float = 0.0
    cause: Cause | None = None  # why the controller expects the current process to exit
    stop_deadline: float | None = None  # runtime clock when the group gets SIGKILL
    backoff: Backoff = field(default_factory=Backoff)
    backoff_until: float | None = None
    restarts: int = 0
    last_exit: LastExit | None = None
    retire: bool = False  # scaled away: removed once stopped
    rss_bytes: int | None = None
    cpu: CpuMeter = field(default_factory=CpuMeter)  # current process tree, from its start
    cpu_sampled_at: float | None = None  # runtime clock of the pass that last fed cpu
    oom_kills_at_start: int | None = None
    sink: Sink | None = None
    timer: asyncio.Handle | None = None  # spawn, running-after-start_seconds, backoff or kill
    health_task: asyncio.Task[None] | None = None
    waiters: list[tuple[Callable[[State], bool], asyncio.Future[State]]] = field(
        default_factory=list
    )

    @property
    def id(self) -> str:
        return f"{self.program}:{self.index}"

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child else None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _settled(state: State) -> bool:
    return state != State.STARTING


def _stopped(state: State) -> bool:
    return state == State.STOPPED


class Program:
    """A program's instances and the actions on them (start, stop, restart, scale)."""

    def __init__(self, name: str, config: ProgramConfig, rt: Runtime) -> None:
        self.name = name
        self.rt = rt
        self.instances: dict[int, Instance] = {}
        self.restarts: Counter[str] = Counter()
        self.exit_code: int | None = None
        self.cpu = CpuMeter()
        self.pinned: int | None = None  # `procpilotctl scale N` on a pool
        # The autoscaler's books (pool.py writes them), for status and metrics:
        self.utilization: float | None = None  # last measurement
        self.at_max = False  # the last recommendation was above max
        self.scale_events: Counter[str] = Counter()  # by direction: up, down
        self.last_scale_time: float | None = None  # wall clock of the last scale event
        self.lock = asyncio.Lock()  # one reconfigure/remove at a time
        self.removed = False  # left the config; a reload that brings it back restarts it
        self.readers: set[PipeReader] = set()  # output pipes still open (leftovers included)
        self.draining: dict[int, asyncio.Future[None]] = {}  # pgid -> done once it is empty
        self.config = config
        self.desired = self._configured_count()
        if (config.user is not None or config.group is not None) and os.geteuid() != 0:
            log.warning("not running as root: user/group ignored",
                        extra={"fields": {"program": name}})

    # --- configuration -------------------------------------------------------------------

    def _configured_count(self) -> int:
        auto = self.config.autoscale
        return self.config.instances if auto is None else auto.min

    def spawn_spec(self, index: int) -> SpawnSpec:
        c = self.config
        env = {**os.environ, **c.environment,
               "PROCPILOT_PROGRAM": self.name, "PROCPILOT_INSTANCE": str(index)}
        return SpawnSpec(argv=c.command, env=env, cwd=c.directory, user=c.user, group=c.group)

    def log_paths(self) -> list[str] | None:
        logs = self.config.logs
        if logs is None:
            return None
        return [self._log_path(i) for i in sorted(self.instances)]

    def _log_path(self, index: int) -> str:
        assert self.config.logs is not None
        return os.path.join(self.config.logs.directory, f"{self.name}-{index}.log")

    def _sink(self, inst: Instance) -> Sink:
        logs = self.config.logs
        if logs is None:
            return PrefixedStream(f"{inst.id} | ")
        os.makedirs(logs.directory, exist_ok=True)
        return self.rt.logfiles.get(self._log_path(inst.index), logs.max_size, logs.backups)

    def close_logs(self) -> None:
        if self.config.logs is not None:
            for index in self.instances:
                self.rt.logfiles.close(self._log_path(index))

    # --- state ---------------------------------------------------------------------------

    def _move(self, inst: Instance, new: State) -> None:
        states.check(inst.state, new)
        inst.state = new
        still = []
        for done, fut in inst.waiters:
            if done(new):
                if not fut.done():
                    fut.set_result(new)
            else:
                still.append((done, fut))
        inst.waiters = still
        if new == State.STOPPED and inst.retire:
            self.close_instance(inst)

    def close_instance(self, inst: Instance) -> None:
        if self.config.logs is not None:
            self.rt.logfiles.close(self._log_path(inst.index))
        self.instances.pop(inst.index, None)

    def _wait(self, inst: Instance, done: Callable[[State], bool]) -> asyncio.Future[State]:
        fut: asyncio.Future[State] = self.rt.loop.create_future()
        if done(inst.state):
            fut.set_result(inst.state)
        else:
            inst.waiters.append((done, fut))
        return fut

    @property
    def state(self) -> State:
        return states.aggregate(i.state for i in self.instances.values())

    def _fields(self, inst: Instance, **more: object) -> dict[str, object]:
        return {"program": self.name, "instance": inst.id, **more}

    # --- starting ------------------------------------------------------------------------

    def _start(self, inst: Instance) -> None:
        """Move to starting and spawn on the next loop turn (never recursively)."""
        inst.cancel_timer()
        inst.backoff_until = None
        self._move(inst, State.STARTING)
        inst.timer = self.rt.loop.call_soon(self._launch, inst)

    def _launch(self, inst: Instance) -> None:
        inst.timer = None
        if inst.state != State.STARTING or inst.child is not None:
            return
        inst.cause = None
        inst.oom_kills_at_start = read_oom_kills(self.rt.fs)
        try:
            if inst.sink is None:  # before spawning: a child must never lack its reader
                inst.sink = self._sink(inst)
            child = spawn(self.spawn_spec(inst.index), self.rt.reaper)
        except (OSError, KeyError, ValueError, subprocess.SubprocessError) as e:
            log.error("cannot start instance", extra={"fields": self._fields(inst, err=str(e))})
            self._after_exit(inst, Exit(FAILED_SPAWN_CODE, None, 0.0, self.rt.clock()), None)
            return
        inst.child = child
        inst.started = self.rt.clock()
        inst.started_wall = self.rt.wall()
        inst.cpu = CpuMeter()
        inst.cpu_sampled_at = None
        inst.rss_bytes = None
        if child.output_fd is not None:
            reader = PipeReader(self.rt.loop, child.output_fd, inst.sink)
            self.readers.add(reader)
            reader.done.add_done_callback(lambda _: self.readers.discard(reader))
        child.exited.add_done_callback(lambda fut: self._exited(inst, child, fut.result()))
        inst.timer = self.rt.loop.call_later(self.config.start_seconds, self._up, inst)
        if self.config.health is not None:
            on_unhealthy = lambda: self._unhealthy(inst, child)  # noqa: E731
            inst.health_task = self.rt.loop.create_task(health.monitor(
                self.config.health, self.rt.reaper, self.spawn_spec(inst.index), on_unhealthy))
        log.info("instance started", extra={"fields": self._fields(inst, pid=child.pid)})

    def _up(self, inst: Instance) -> None:
        inst.timer = None
        if inst.state == State.STARTING:
            inst.backoff_until = None
            self._move(inst, State.RUNNING)

    def _unhealthy(self, inst: Instance, child: Child) -> None:
        if inst.child is child and inst.state in (State.STARTING, State.RUNNING):
            log.warning("instance failed its health check",
                        extra={"fields": self._fields(inst, pid=child.pid)})
            self._stop(inst, "health")

    # --- exits ---------------------------------------------------------------------------

    def _exited(self, inst: Instance, child: Child, status: ExitStatus) -> None:
        if inst.child is not child:
            return
        if inst.state == State.STOPPING and inst.stop_deadline is not None:
            self._drain(child.pid, inst.stop_deadline)
        else:
            child.signal_group(signal.SIGKILL)  # leftovers of this instance; see module doc
        inst.stop_deadline = None
        inst.child = None
        inst.rss_bytes = None
        inst.cancel_timer()
        if inst.health_task is not None:
            inst.health_task.cancel()
            inst.health_task = None
        cause = inst.cause
        if cause is None and status.signal == signal.SIGKILL:
            now_kills = read_oom_kills(self.rt.fs)
            before = inst.oom_kills_at_start
            if now_kills is not None and before is not None and now_kills > before:
                cause = "oom_kill"
        now = self.rt.clock()
        self._after_exit(inst, Exit(status.code, status.signal, now - inst.started, now), cause)

    def _after_exit(self, inst: Instance, exited: Exit, cause: Cause | None) -> None:
        outcome = states.on_exit(self.config, exited, cause, inst.backoff, self.rt.rand())
        inst.backoff = outcome.backoff
        inst.cause = None
        inst.last_exit = LastExit(exited.code, exited.signal, outcome.reason, self.rt.wall())
        self.exit_code = exited.code_value
        if outcome.restarts:
            self.restarts[outcome.reason] += 1
            inst.restarts += 1
        how = ExitStatus(exited.code, exited.signal).describe()
        fields = self._fields(inst, status=how, reason=outcome.reason, next=outcome.state.value)
        if outcome.state == State.FATAL:
            log.error("instance gave up after too many restarts; fatal until started again",
                      extra={"fields": fields})
        elif outcome.state == State.BACKOFF:
            log.warning("instance exited; restarting after backoff",
                        extra={"fields": {**fields, "delay": round(outcome.delay, 3)}})
        else:
            log.info("instance exited", extra={"fields": fields})
        if outcome.state == State.STARTING:
            self._start(inst)
            return
        self._move(inst, outcome.state)
        if outcome.state == State.BACKOFF:
            inst.backoff_until = self.rt.clock() + outcome.delay
            inst.timer = self.rt.loop.call_later(outcome.delay, self._backoff_over, inst)

    def _backoff_over(self, inst: Instance) -> None:
        inst.timer = None
        if inst.state == State.BACKOFF:
            self._start(inst)

    # --- stopping ------------------------------------------------------------------------

    def _stop(self, inst: Instance, cause: Cause) -> None:
        """Ask the current process to go: stop signal to its group, SIGKILL after timeout."""
        if inst.state in (State.BACKOFF, State.EXITED, State.FATAL):
            inst.cancel_timer()
            inst.backoff_until = None
            if cause == "manual":
                self._start(inst)
            else:
                self._move(inst, State.STOPPED)
            return
        if inst.state == State.STOPPING:
            if cause in ("stop", "manual"):
                inst.cause = cause  # the operator's latest word wins
            return
        if inst.state == State.STARTING and inst.child is None:  # spawn not yet run
            inst.cancel_timer()
            if cause != "manual":
                self._move(inst, State.STOPPING)
                self._move(inst, State.STOPPED)
            return
        if inst.state not in (State.STARTING, State.RUNNING) or inst.child is None:
            return
        child = inst.child
        inst.cause = cause
        inst.cancel_timer()
        self._move(inst, State.STOPPING)
        child.signal_group(self.config.stop.signal)
        inst.stop_deadline = self.rt.clock() + self.config.stop.timeout
        inst.timer = self.rt.loop.call_later(self.config.stop.timeout, self._kill, inst, child)

    def _kill(self, inst: Instance, child: Child) -> None:
        inst.timer = None
        if inst.child is child:
            log.warning("instance did not stop in time; SIGKILL to its process group",
                        extra={"fields": self._fields(inst, pid=child.pid)})
            child.signal_group(signal.SIGKILL)

    def _drain(self, pgid: int, deadline: float) -> None:
        """Wait for the rest of a stopped group until deadline, then SIGKILL it.

        The group's last member is always reaped by the controller (members left behind
        are re-parented to it), so checking after each orphan reap sees it empty.
        """
        if not signal_group(pgid, 0):
            return
        loop, reaper = self.rt.loop, self.rt.reaper
        done: asyncio.Future[None] = loop.create_future()

        timer = loop.call_later(max(deadline - self.rt.clock(), 0.0),
                                signal_group, pgid, signal.SIGKILL)

        def check() -> None:
            if not signal_group(pgid, 0):
                timer.cancel()
                reaper.orphan_listeners.discard(check)
                self.draining.pop(pgid, None)
                done.set_result(None)

        reaper.orphan_listeners.add(check)
        self.draining[pgid] = done

    # --- actions (control socket, startup, reload, scaling) -------------------------------

    def ensure_instances(self) -> None:
        """Create stopped slots up to the desired count (lowest free indices first)."""
        index = 0
        while len([i for i in self.instances.values() if not i.retire]) < self.desired:
            if index not in self.instances:
                self.instances[index] = Instance(self.name, index)
            index += 1

    def select(self, index: int | None) -> list[Instance]:
        if index is None:
            return [self.instances[i] for i in sorted(self.instances)]
        inst = self.instances.get(index)
        return [inst] if inst is not None else []

    def start(self, index: int | None = None) -> list[asyncio.Future[State]]:
        """Start stopped/exited/fatal/backoff instances; futures resolve once each settles."""
        self.ensure_instances()
        waits = []
        for inst in self.select(index):
            if inst.retire:
                continue
            if inst.state in (State.STOPPED, State.EXITED, State.FATAL, State.BACKOFF):
                inst.backoff = Backoff()  # an operator's start begins the backoff afresh
                self._start(inst)
            elif inst.state == State.STOPPING:
                inst.cause = "manual"  # start again once the stop completes
            waits.append(self._wait(inst, _settled))
        return waits

    def stop(self, index: int | None = None) -> list[asyncio.Future[State]]:
        """Stop instances; futures resolve once each is stopped."""
        waits = []
        for inst in self.select(index):
            self._stop(inst, "stop")
            waits.append(self._wait(inst, _stopped))
        return waits

    def restart(self, index: int | None = None) -> list[asyncio.Future[State]]:
        """Restart instances (reason manual); futures resolve once each has settled again."""
        self.ensure_instances()
        waits = []
        for inst in self.select(index):
            if inst.state in (State.STOPPED, State.EXITED, State.FATAL, State.BACKOFF):
                inst.backoff = Backoff()
                self._start(inst)
                waits.append(self._wait(inst, _settled))
            else:
                fut: asyncio.Future[State] = self.rt.loop.create_future()
                self._stop(inst, "manual")
                # Settled again: not stopping and not starting any more.
                inst.waiters.append((lambda s: s not in (State.STOPPING, State.STARTING), fut))
                waits.append(fut)
        return waits

    def scale(self, count: int) -> list[asyncio.Future[State]]:
        """Set the desired count: new slots start, the newest instances stop first."""
        self.desired = count
        active = [i for i in self.instances.values() if not i.retire]
        if len(active) > count:
            now = self.rt.clock()
            # Not-yet-running slots count as newest: they serve nothing yet.
            ages = [(i, i.started if i.state == State.RUNNING else now + 1) for i in active]
            waits = []
            for inst in pick_to_stop(ages, len(active) - count):
                inst.retire = True
                if inst.state == State.STOPPED:
                    self.close_instance(inst)
                else:
                    waits.append(self._wait(inst, _stopped))
                    self._stop(inst, "stop")
            return waits
        before = set(self.instances)
        self.ensure_instances()
        waits = []
        for index in sorted(set(self.instances) - before):
            waits += self.start(index)
        return waits

    async def reconfigure(self, config: ProgramConfig) -> None:
        """Apply a changed config: a count change scales, anything else restarts all."""
        async with self.lock:
            only_count = config.model_copy(update={"instances": self.config.instances})
            if only_count == self.config and not self.removed:
                self.config = config
                await wait_all(self.scale(self._configured_count()))
                return
            await wait_all(self.stop())
            self.close_logs()
            self.instances.clear()
            self.config = config
            self.removed = False
            self.pinned = None
            self.desired = self._configured_count()
            self.ensure_instances()
            if config.autostart:
                await wait_all(self.start())

    async def remove(self) -> None:
        """Stop every instance for good (the program left the config)."""
        self.removed = True  # at once: a reload before the lock is ours must see it
        async with self.lock:
            await wait_all(self.stop())
            self.close_logs()

    def sample(self, members: dict[int, list[Proc]], now: float) -> None:
        """Take this tick's RSS/CPU of each running tree; restart instances over the limit."""
        limit = self.config.limits.memory
        everything: list[Proc] = []
        for inst in self.instances.values():
            if inst.child is None:
                continue
            procs = members.get(inst.child.pid, [])
            everything += procs
            inst.rss_bytes = sum(p.rss_bytes for p in procs)
            inst.cpu.add(procs)
            inst.cpu_sampled_at = now
            if limit is not None and inst.rss_bytes > limit and inst.state in (
                State.STARTING, State.RUNNING
            ):
                log.warning("instance over its memory limit; restarting", extra={
                    "fields": self._fields(inst, rss_bytes=inst.rss_bytes, limit_bytes=limit)})
                self._stop(inst, "memory_limit")
        self.cpu.add(everything)

    def running_pids(self) -> list[int]:
        return [i.child.pid for i in self.instances.values() if i.child is not None]

    # --- reading -------------------------------------------------------------------------

    def _pool_view(self) -> PoolView | None:
        auto = self.config.autoscale
        if auto is None:
            return None
        return PoolView(auto.min, auto.max, self.pinned, self.utilization, self.desired,
                        cpu_target_cores=auto.cpu_target, at_max=self.at_max,
                        scale_events=dict(self.scale_events),
                        last_scale_time=self.last_scale_time)

    def view(self) -> ProgramView:
        now, wall = self.rt.clock(), self.rt.wall()
        instances = []
        for i in (self.instances[k] for k in sorted(self.instances)):
            up = i.child is not None
            instances.append(InstanceView(
                id=i.id,
                state=i.state.value,
                pid=i.pid,
                uptime_seconds=round(now - i.started, 3) if up else None,
                restarts=i.restarts,
                rss_bytes=i.rss_bytes if up else None,
                backoff_seconds=max(0.0, i.backoff_until - now) if i.backoff_until else 0.0,
                last_exit=i.last_exit,
                started_at=wall - (now - i.started) if up else None,
            ))
        return ProgramView(
            program=self.name,
            state=self.state.value,
            desired=self.desired,
            pool=self._pool_view(),
            instances=tuple(instances),
            restarts=dict(self.restarts),
            exit_code=self.exit_code,
            memory_limit=self.config.limits.memory,
            cpu_user=self.cpu.user,
            cpu_system=self.cpu.system,
        )


async def wait_all(waits: list[asyncio.Future[State]]) -> list[State]:
    """Results of the futures from start/stop/restart/scale."""
    return list(await asyncio.gather(*waits)) if waits else []
