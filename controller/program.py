"""A supervised program: its instances, their state machine, and every timer they need.

Everything here runs on the event loop thread; waiting is a loop timer (``call_later``) or a
future, never a sleep, so a program in backoff holds up nothing. The decisions (what an exit
means, how long to back off) are the pure functions of ``states`` and ``backoff``; this module
only carries them out through the :class:`~procpilot.controller.runtime.Runtime` (start,
signal, kill) and keeps the books that status and metrics read.

When an instance's main process exits on its own, whatever is left of it is killed at once:
leftovers of a crashed instance would otherwise pile up across restarts (and keep its output
pipe open). When it exits after the controller sent the stop signal, the rest of its group
(which got the signal too) may finish until the stop timeout, then is killed: a shell
wrapper dying first must not cut its children's clean shutdown short.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter, deque
from collections.abc import Callable

from procpilot.controller import health, states
from procpilot.controller.backoff import Backoff
from procpilot.controller.config import ProgramConfig
from procpilot.controller.instance import Instance, Run, pick_to_stop
from procpilot.controller.logsink import PrefixedStream, Sink
from procpilot.controller.runtime import Runtime, SpawnFailed, Usage
from procpilot.controller.spawn import SpawnSpec
from procpilot.controller.states import FAILED_SPAWN, Cause, Exit, ExitStatus, State
from procpilot.controller.view import InstanceView, LastExit, LimitView, PoolView, ProgramView

log = logging.getLogger("procpilot.program")


def _settled(state: State) -> bool:
    return state != State.STARTING


def _stopped(state: State) -> bool:
    return state == State.STOPPED


def _restarted(state: State) -> bool:
    return state not in (State.STOPPING, State.STARTING)


RESTARTABLE = (State.STOPPED, State.EXITED, State.FATAL, State.BACKOFF)
LAUNCH_BATCH = 16  # spawns per loop turn


class Program:
    """A program's instances and the actions on them (start, stop, restart, scale)."""

    def __init__(self, name: str, config: ProgramConfig, rt: Runtime) -> None:
        self.name = name
        self.rt = rt
        self.instances: dict[int, Instance] = {}
        self.restarts: Counter[str] = Counter()
        self.exit_code: int | None = None
        self.cpu_user = 0.0  # every process of every instance, kept across restarts
        self.cpu_system = 0.0
        self.cpu_throttled: float | None = None  # likewise, once a cgroup reports it
        self.lock = asyncio.Lock()  # one reconfigure/remove at a time
        self._to_launch: deque[Instance] = deque()  # started, waiting for their spawn
        self.removed = False  # left the config; a reload that brings it back restarts it
        self.config = config
        self.desired = self._configured_count()
        if (config.user is not None or config.group is not None) and os.geteuid() != 0:
            log.warning("not running as root: user/group ignored",
                        extra={"fields": {"program": name}})
        for lim in self.limits():
            if lim.enforced in ("polled", "not enforced"):
                log.warning("limit not kept by the kernel", extra={"fields": {
                    "program": name, "limit": lim.kind, "enforced": lim.enforced,
                    "isolation": rt.isolation}})

    # --- configuration -------------------------------------------------------------------

    def _configured_count(self) -> int:
        auto = self.config.autoscale
        return self.config.instances if auto is None else auto.min

    def spawn_spec(self, index: int) -> SpawnSpec:
        c = self.config
        env = {**os.environ, **c.env(),
               "PROCPILOT_PROGRAM": self.name, "PROCPILOT_INSTANCE": str(index)}
        return SpawnSpec(argv=c.command, env=env, cwd=c.directory, user=c.user, group=c.group)

    def log_paths(self) -> list[str] | None:
        if self.config.logs is None:
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
        return self.rt.logs.get(self._log_path(inst.index), logs.max_size, logs.backups)

    def close_logs(self) -> None:
        if self.config.logs is not None:
            for index in self.instances:
                self.rt.logs.close(self._log_path(index))

    # --- state ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self.rt.loop.time()

    def _move(self, inst: Instance, new: State) -> None:
        states.check(inst.state, new)
        inst.state = new
        inst.waiters.notify(new)
        if new == State.STOPPED and inst.retire:
            self._close_instance(inst)

    def _close_instance(self, inst: Instance) -> None:
        if self.config.logs is not None:
            self.rt.logs.close(self._log_path(inst.index))
        self.instances.pop(inst.index, None)

    def _wait(self, inst: Instance, done: Callable[[State], bool]) -> asyncio.Future[State]:
        fut: asyncio.Future[State] = self.rt.loop.create_future()
        if done(inst.state):
            fut.set_result(inst.state)
        else:
            inst.waiters.add(done, fut)
        return fut

    @property
    def state(self) -> State:
        return states.aggregate(i.state for i in self.instances.values())

    def _fields(self, inst: Instance, **more: object) -> dict[str, object]:
        return {"program": self.name, "instance": inst.id, **more}

    # --- starting ------------------------------------------------------------------------

    def _start(self, inst: Instance) -> None:
        """Move to starting and spawn on a later loop turn (never recursively)."""
        inst.cancel_timer()
        inst.backoff_until = None
        self._move(inst, State.STARTING)
        self._to_launch.append(inst)
        if len(self._to_launch) == 1:
            self.rt.loop.call_soon(self._launch_some)

    def _launch_some(self) -> None:
        """Spawn up to LAUNCH_BATCH waiting instances, then let the loop run (signals,
        control requests, exits) before the next batch: starting thousands at once must not
        make the controller deaf."""
        for _ in range(min(LAUNCH_BATCH, len(self._to_launch))):
            self._launch(self._to_launch.popleft())
        if self._to_launch:
            self.rt.loop.call_soon(self._launch_some)

    def _launch(self, inst: Instance) -> None:
        if inst.state != State.STARTING or inst.run is not None:  # stopped before its turn
            return
        inst.cause = None
        try:
            if inst.sink is None:  # before spawning: a child must never lack its reader
                inst.sink = self._sink(inst)
            confinement = self.config.limits.confinement(f"{self.name}-{inst.index}")
            child = self.rt.start(self.spawn_spec(inst.index), inst.sink, confinement)
        except (SpawnFailed, OSError) as e:
            log.error("cannot start instance", extra={"fields": self._fields(inst, err=str(e))})
            self._after_exit(inst, Exit(FAILED_SPAWN, 0.0, self._now()), None, str(e))
            return
        run = inst.run = Run(child, self._now())
        child.exited.add_done_callback(lambda fut: self._exited(inst, run, fut.result()))
        inst.timer = self.rt.loop.call_later(self.config.start_seconds, self._up, inst)
        check = self.config.health
        if check is not None:
            spec = self.spawn_spec(inst.index)
            run.health = self.rt.loop.create_task(health.monitor(
                check, lambda: self.rt.healthy(check, spec), lambda: self._unhealthy(inst, run)))
        log.info("instance started", extra={"fields": self._fields(inst, pid=child.pid)})

    def _up(self, inst: Instance) -> None:
        inst.timer = None
        if inst.state == State.STARTING:
            inst.backoff_until = None
            self._move(inst, State.RUNNING)

    def _unhealthy(self, inst: Instance, run: Run) -> None:
        if inst.run is run and inst.state in (State.STARTING, State.RUNNING):
            log.warning("instance failed its health check",
                        extra={"fields": self._fields(inst, pid=run.child.pid)})
            self.stop_for(inst, "health")

    # --- exits ---------------------------------------------------------------------------

    def _exited(self, inst: Instance, run: Run, status: ExitStatus) -> None:
        if inst.run is not run:
            return
        if inst.state == State.STOPPING and run.stop_deadline is not None:
            run.child.finish(run.stop_deadline)
        else:
            run.child.kill()  # leftovers of this instance; see module doc
        inst.run = None
        inst.cancel_timer()
        run.end()
        cause = inst.cause
        if cause is None and status.signal == signal.SIGKILL and run.child.oom_killed():
            cause = "oom_kill"
        now = self._now()
        self._after_exit(inst, Exit(status, now - run.started, now), cause)

    def _after_exit(self, inst: Instance, exited: Exit, cause: Cause | None,
                    error: str | None = None) -> None:
        outcome = states.on_exit(self.config, exited, cause, inst.backoff, self.rt.rand())
        inst.backoff = outcome.backoff
        inst.cause = None
        inst.last_exit = LastExit(exited.status, outcome.reason, self.rt.wall(), error)
        self.exit_code = exited.status.shell_code
        if outcome.restarts:
            self.restarts[outcome.reason] += 1
            inst.restarts += 1
        how = exited.status.describe()
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
            inst.backoff_until = self._now() + outcome.delay
            inst.timer = self.rt.loop.call_later(outcome.delay, self._backoff_over, inst)

    def _backoff_over(self, inst: Instance) -> None:
        inst.timer = None
        if inst.state == State.BACKOFF:
            self._start(inst)

    # --- stopping ------------------------------------------------------------------------

    def stop_for(self, inst: Instance, cause: Cause) -> None:
        """Ask the current process to go: stop signal to its group, SIGKILL after timeout.

        ``manual`` restarts once it is gone; ``memory_limit`` and ``health`` restart
        through the backoff like a crash; ``stop`` ends in stopped.
        """
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
        run = inst.run
        if inst.state == State.STARTING and run is None:  # spawn not yet run
            inst.cancel_timer()
            if cause != "manual":
                self._move(inst, State.STOPPING)
                self._move(inst, State.STOPPED)
            return
        if inst.state not in (State.STARTING, State.RUNNING) or run is None:
            return
        inst.cause = cause
        inst.cancel_timer()
        self._move(inst, State.STOPPING)
        run.child.signal(self.config.stop.signal)
        run.stop_deadline = self._now() + self.config.stop.timeout
        inst.timer = self.rt.loop.call_later(self.config.stop.timeout, self._kill, inst, run)

    def _kill(self, inst: Instance, run: Run) -> None:
        inst.timer = None
        if inst.run is run:
            log.warning("instance did not stop in time; killing what is left of it",
                        extra={"fields": self._fields(inst, pid=run.child.pid)})
            run.child.kill()

    # --- actions (control socket, startup, reload, scaling) -------------------------------

    def ensure_instances(self) -> None:
        """Create stopped slots up to the desired count (lowest free indices first)."""
        missing = self.desired - sum(not i.retire for i in self.instances.values())
        index = 0
        while missing > 0:
            if index not in self.instances:
                self.instances[index] = Instance(self.name, index)
                missing -= 1
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
            if inst.state in RESTARTABLE:
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
            self.stop_for(inst, "stop")
            waits.append(self._wait(inst, _stopped))
        return waits

    def restart(self, index: int | None = None) -> list[asyncio.Future[State]]:
        """Restart instances (reason manual); futures resolve once each has settled again."""
        self.ensure_instances()
        waits = []
        for inst in self.select(index):
            if inst.state in RESTARTABLE:
                inst.backoff = Backoff()
                self._start(inst)
                waits.append(self._wait(inst, _settled))
            else:
                fut: asyncio.Future[State] = self.rt.loop.create_future()
                self.stop_for(inst, "manual")
                inst.waiters.add(_restarted, fut)
                waits.append(fut)
        return waits

    def scale(self, count: int) -> list[asyncio.Future[State]]:
        """Set the desired count: new slots start, the newest instances stop first."""
        self.desired = count
        active = [i for i in self.instances.values() if not i.retire]
        if len(active) > count:
            later = self._now() + 1
            # Not-yet-running slots count as newest: they serve nothing yet.
            ages = [(i, i.run.started if i.run and i.state == State.RUNNING else later)
                    for i in active]
            waits = []
            for inst in pick_to_stop(ages, len(active) - count):
                inst.retire = True
                if inst.state == State.STOPPED:
                    self._close_instance(inst)
                else:
                    waits.append(self._wait(inst, _stopped))
                    self.stop_for(inst, "stop")
            return waits
        before = set(self.instances)
        self.ensure_instances()
        waits = []
        for index in sorted(set(self.instances) - before):
            waits += self.start(index)
        return waits

    async def reconfigure(self, config: ProgramConfig) -> bool:
        """Apply a changed config; True when it was applied to the running instances.

        A change of only the count or the autoscale section scales in place (a pool keeps
        its count, clamped to the new bounds); anything else restarts every instance.
        """
        async with self.lock:
            same = config.model_copy(update={"instances": self.config.instances,
                                             "autoscale": self.config.autoscale})
            if same == self.config and not self.removed:
                self.config = config
                auto = config.autoscale
                count = (config.instances if auto is None
                         else min(max(self.desired, auto.min), auto.max))
                await wait_all(self.scale(count))
                return True
            await wait_all(self.stop())
            self.close_logs()
            self.instances.clear()
            self.config = config
            self.removed = False
            self.desired = self._configured_count()
            self.ensure_instances()
            if config.autostart:
                await wait_all(self.start())
            return False

    async def remove(self) -> None:
        """Stop every instance for good (the program left the config)."""
        self.removed = True  # at once: a reload before the lock is ours must see it
        async with self.lock:
            await wait_all(self.stop())
            self.close_logs()

    # --- measurements --------------------------------------------------------------------

    def running(self) -> list[Run]:
        """The instances' current processes."""
        return [i.run for i in self.instances.values() if i.run is not None]

    def record(self, usage: dict[int, Usage], now: float) -> None:
        """Take one measurement of each process; the program's counters add what is new."""
        for run in self.running():
            measured = usage.get(run.child.pid)
            if measured is None:
                continue
            self.cpu_user += max(measured.cpu_user - run.cpu_user, 0.0)
            self.cpu_system += max(measured.cpu_system - run.cpu_system, 0.0)
            if measured.cpu_throttled is not None:
                self.cpu_throttled = (self.cpu_throttled or 0.0) + max(
                    measured.cpu_throttled - run.cpu_throttled, 0.0)
                run.cpu_throttled = measured.cpu_throttled
            run.rss_bytes = measured.rss_bytes
            run.cpu_user, run.cpu_system = measured.cpu_user, measured.cpu_system
            run.cgroup_memory_bytes, run.tasks = measured.cgroup_memory_bytes, measured.tasks
            run.sampled_at = now

    def limits(self) -> tuple[LimitView, ...]:
        """The configured limits and who keeps each (see LimitView)."""
        lim = self.config.limits
        kernel = self.rt.enforceable
        views = []
        for kind in ("memory", "memory_high", "swap", "cpu", "tasks"):
            value = getattr(lim, kind)
            if value is not None:
                keeper = ("kernel" if kind in kernel
                          else "polled" if kind == "memory" else "not enforced")
                views.append(LimitView(kind, value, keeper))
        for kind in ("nofile", "core"):
            value = getattr(lim, kind)
            if value is not None:
                views.append(LimitView(kind, value, "process"))
        if lim.umask is not None:
            views.append(LimitView("umask", f"{lim.umask:04o}", "process"))
        return tuple(views)

    # --- reading -------------------------------------------------------------------------

    def view(self, pool: PoolView | None = None) -> ProgramView:
        now, wall = self._now(), self.rt.wall()
        instances = []
        for i in (self.instances[k] for k in sorted(self.instances)):
            run = i.run
            instances.append(InstanceView(
                id=i.id,
                state=i.state.value,
                pid=i.pid,
                uptime_seconds=round(now - run.started, 3) if run else None,
                restarts=i.restarts,
                rss_bytes=run.rss_bytes if run else None,
                backoff_seconds=max(0.0, i.backoff_until - now) if i.backoff_until else 0.0,
                last_exit=i.last_exit,
                started_at=wall - (now - run.started) if run else None,
                cgroup_memory_bytes=run.cgroup_memory_bytes if run else None,
                tasks=run.tasks if run else None,
            ))
        return ProgramView(
            program=self.name,
            state=self.state.value,
            desired=self.desired,
            pool=pool,
            instances=tuple(instances),
            restarts=dict(self.restarts),
            exit_code=self.exit_code,
            limits=self.limits(),
            cpu_user=self.cpu_user,
            cpu_system=self.cpu_system,
            cpu_throttled=self.cpu_throttled,
        )


async def wait_all(waits: list[asyncio.Future[State]]) -> list[State]:
    """Results of the futures from start/stop/restart/scale."""
    return list(await asyncio.gather(*waits)) if waits else []
