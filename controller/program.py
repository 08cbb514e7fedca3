"""A supervised program: its instances, their state machine, and every timer they need.

Everything here runs on the event loop thread; waiting is a loop timer (``call_later``) or a
future, never a sleep, so a program in backoff holds up nothing. The decisions (what an exit
means, how long to back off, what a rollout does next) are the pure functions of ``states``,
``backoff`` and ``rolling``; this module only carries them out through the
:class:`~procpilot.controller.runtime.Runtime` (start, signal, kill) and keeps the books that
status, metrics and hooks read.

An instance is *running* once it is ready. When a process is ready, and when one is restarted
for not showing that it is alive (ready_timeout, health, watchdog), is decided in ``readiness``.

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
from dataclasses import replace

from procpilot.controller import readiness, rolling, states
from procpilot.controller.backoff import Backoff
from procpilot.controller.config import ProgramConfig
from procpilot.controller.hooks import Event
from procpilot.controller.instance import Changes, Instance, Run, pick_to_stop
from procpilot.controller.logsink import instance_sinks, log_paths
from procpilot.controller.notify import Notice
from procpilot.controller.runtime import Listener, Runtime, SpawnFailed, Usage
from procpilot.controller.spawn import SpawnSpec, inherited_environment
from procpilot.controller.states import FAILED_SPAWN, Cause, Exit, ExitStatus, Reason, State
from procpilot.controller.view import LastExit, LimitView, PoolView, ProgramView

log = logging.getLogger("procpilot.program")


def _settled(state: State) -> bool:
    return state != State.STARTING


def _stopped(state: State) -> bool:
    return state == State.STOPPED


def _restarted(state: State) -> bool:
    return state not in (State.STOPPING, State.STARTING)


def _gone(inst: Instance) -> Callable[[State], bool]:
    """Stopped, and no process it was replacing is left either."""
    return lambda state: state == State.STOPPED and not inst.old


RESTARTABLE = (State.STOPPED, State.EXITED, State.FATAL, State.BACKOFF)
LAUNCH_BATCH = 16  # spawns per loop turn
MEMORY_KILLS = ("oom_kill", "memory_limit")


class Program:
    """A program's instances and the actions on them (start, stop, restart, scale, roll)."""

    def __init__(self, name: str, config: ProgramConfig, rt: Runtime,
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.name = name
        self.rt = rt
        self.on_event = on_event  # hooks
        self.instances: dict[int, Instance] = {}
        self.restarts: Counter[str] = Counter()
        self.exit_code: int | None = None
        self.cpu_user = 0.0  # every process of every instance, kept across restarts
        self.cpu_system = 0.0
        self.cpu_throttled: float | None = None  # likewise, once a cgroup reports it
        self.lock = asyncio.Lock()  # one replacement/remove/rollout at a time
        self.changes = Changes()  # any instance change, removal or new config
        self._to_launch: deque[Instance] = deque()  # started, waiting for their spawn
        self.removed = False  # left the config; a reload that brings it back restarts it
        self.outdated = False  # its instances run an older config: replace() is due
        self._stop_first = False  # ...and stops them all first (it was removed meanwhile)
        self.waiting_for: tuple[str, ...] = ()  # dependencies its start waits on
        self.listeners: dict[str, Listener] = {}  # its sockets, by address
        self.log_files: set[str] = set()  # the log files its instances were given
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

    def _kept_count(self) -> int:
        """The count after a config change that keeps the instances: a pool's stays, within
        its (new) bounds."""
        auto = self.config.autoscale
        return self.config.instances if auto is None else min(max(self.desired, auto.min),
                                                               auto.max)

    def spawn_spec(self, index: int) -> SpawnSpec:
        """How its processes run: an instance's, and its exec health checks."""
        c = self.config
        env = {**inherited_environment(), **c.env(),
               "PROCPILOT_PROGRAM": self.name, "PROCPILOT_INSTANCE": str(index)}
        return SpawnSpec(argv=c.command, env=env, cwd=c.directory, user=c.user, group=c.group)

    def _instance_spec(self, index: int) -> SpawnSpec:
        """An instance's main process: spawn_spec, plus its sockets and watchdog."""
        spec = self.spawn_spec(index)
        c = self.config
        if c.watchdog is not None:
            env = {**(spec.env or {}), "WATCHDOG_USEC": str(round(c.watchdog * 1e6))}
            spec = replace(spec, env=env, pid_env=("WATCHDOG_PID",))
        return replace(spec, sockets=tuple((s.name, self._listener(s.listen).fd)
                                           for s in c.sockets))

    def _listener(self, address: str) -> Listener:
        if address not in self.listeners:
            try:
                self.listeners[address] = self.rt.listen(address)
            except OSError as e:
                raise SpawnFailed(f"cannot listen on {address}: {e.strerror or e}") from None
        return self.listeners[address]

    def release_sockets(self) -> None:
        """Close the sockets its config no longer names (or all, once it is removed);
        processes that were passed one keep it open."""
        wanted = set() if self.removed else {s.listen for s in self.config.sockets}
        for address in set(self.listeners) - wanted:
            self.listeners.pop(address).close()

    def log_paths(self) -> list[str] | None:
        logs = self.config.logs
        if logs is None:
            return None
        return [p for i in sorted(self.instances) for p in self.log_paths_of(i)]

    def log_paths_of(self, index: int) -> list[str]:
        logs = self.config.logs
        return [] if logs is None else log_paths(logs, self.name, index)

    def release_logs(self) -> None:
        """Forget the log files its config no longer names (all, once it is removed), like
        release_sockets: SIGUSR1 must not recreate them, and processes still writing to one
        (a rollout's old processes) hold it open no longer than each write."""
        wanted = set() if self.removed else set(self.log_paths() or ())
        for path in self.log_files - wanted:
            self.rt.logs.forget(path)
        self.log_files &= wanted

    def _close_logs_of(self, index: int) -> None:
        for path in self.log_paths_of(index):
            self.rt.logs.close(path)

    def close_logs(self) -> None:
        for index in self.instances:
            self._close_logs_of(index)

    # --- state ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self.rt.loop.time()

    def _move(self, inst: Instance, new: State) -> None:
        states.check(inst.state, new)
        inst.state = new
        inst.waiters.notify(new)
        self.changes.notify()
        if new == State.STOPPED and inst.retire:
            self._close_instance(inst)

    def _close_instance(self, inst: Instance) -> None:
        self._close_logs_of(inst.index)
        self.instances.pop(inst.index, None)
        self.changes.notify()

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

    def log_fields(self, inst: Instance, **more: object) -> dict[str, object]:
        """Structured log fields naming the instance, and more."""
        return {"program": self.name, "instance": inst.id, **more}

    def _emit(self, event: str, inst: Instance | None, state: State | None, *,
              pid: int | None = None, reason: str | None = None, exit_code: int | None = None,
              desired: int | None = None) -> None:
        """Tell the hooks (they run later: this returns at once). An exit carries the
        instance's last lines of output."""
        if self.on_event is None:
            return
        tail = tuple(line.decode(errors="replace") for line in inst.tail) \
            if inst is not None and exit_code is not None else ()
        self.on_event(Event(
            event=event, program=self.name, instance=inst.id if inst else None,
            state=state.value if state else None, time=self.rt.wall(), pid=pid, reason=reason,
            exit_code=exit_code, log_tail=tail, desired=desired))

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
        c = self.config

        def notified(notice: Notice) -> None:
            readiness.notified(self, inst, run, notice)

        try:
            if inst.output is None:  # before spawning: a child must never lack its reader
                inst.output = instance_sinks(c.logs, self.name, inst.index, files=self.rt.logs,
                                             clock=self.rt.wall, tail=inst.tail)
                self.log_files.update(self.log_paths_of(inst.index))
            stdout, stderr = inst.output
            confinement = c.limits.confinement(f"{self.name}-{inst.index}")
            child = self.rt.start(self._instance_spec(inst.index), stdout, confinement,
                                  stderr=stderr, notify=notified if c.ready == "notify" else None)
        except (SpawnFailed, OSError) as e:
            log.error("cannot start instance", extra={"fields": self.log_fields(inst, err=str(e))})
            self._after_exit(inst, Exit(FAILED_SPAWN, 0.0, self._now(), ready=False), None,
                             None, str(e))
            return
        run = inst.run = Run(child, self._now())
        child.exited.add_done_callback(lambda fut: self._exited(inst, run, fut.result()))
        readiness.watch(self, inst, run)
        log.info("instance started", extra={"fields": self.log_fields(inst, pid=child.pid)})
        self._emit("started", inst, State.STARTING, pid=child.pid)

    def mark_ready(self, inst: Instance, run: Run) -> None:
        """The process is ready: the instance is running; a process it replaces may go."""
        if inst.run is not run or inst.state != State.STARTING:
            return
        inst.cancel_timer()
        inst.backoff_until = None
        run.ready_at = self._now()
        self._move(inst, State.RUNNING)
        readiness.arm_watchdog(self, inst, run)
        for old in list(inst.old):
            self._stop_old(inst, old, replaced=True)
        self._emit("ready", inst, State.RUNNING, pid=run.child.pid)

    # --- exits ---------------------------------------------------------------------------

    def _exited(self, inst: Instance, run: Run, status: ExitStatus) -> None:
        run.child.drain()
        if run in inst.old:
            self._old_exited(inst, run, status)
            return
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
        self._after_exit(inst, Exit(status, now - run.started, now, run.ready_at is not None),
                         cause, run.child.pid)

    def _after_exit(self, inst: Instance, exited: Exit, cause: Cause | None, pid: int | None,
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
        fields = self.log_fields(inst, status=how, reason=outcome.reason, next=outcome.state.value)
        if outcome.state == State.FATAL:
            log.error("instance gave up after too many restarts; fatal until started again",
                      extra={"fields": fields})
        elif outcome.state == State.BACKOFF:
            log.warning("instance exited; restarting after backoff",
                        extra={"fields": {**fields, "delay": round(outcome.delay, 3)}})
        else:
            log.info("instance exited", extra={"fields": fields})
        self._emit_exit(inst, outcome.state, outcome.reason, exited.status, pid)
        if outcome.state == State.STARTING:
            self._start(inst)
            return
        self._move(inst, outcome.state)
        if outcome.state == State.BACKOFF:
            inst.backoff_until = self._now() + outcome.delay
            inst.timer = self.rt.loop.call_later(outcome.delay, self._backoff_over, inst)

    def _emit_exit(self, inst: Instance, state: State, reason: Reason, status: ExitStatus,
                   pid: int | None) -> None:
        events = ["exited", *(["memory_kill"] if reason in MEMORY_KILLS else []),
                  *([state.value] if state in (State.BACKOFF, State.FATAL) else [])]
        for event in events:
            self._emit(event, inst, state, pid=pid, reason=reason, exit_code=status.shell_code)

    def _backoff_over(self, inst: Instance) -> None:
        inst.timer = None
        if inst.state == State.BACKOFF:
            self._start(inst)

    # --- stopping ------------------------------------------------------------------------

    def stop_for(self, inst: Instance, cause: Cause) -> None:
        """Ask the current process to go: stop signal to its group, SIGKILL after timeout.

        ``manual`` restarts once it is gone; ``memory_limit``, ``health``, ``watchdog`` and
        ``ready_timeout`` restart through the backoff like a crash; ``stop`` ends in stopped,
        and also stops a process it was replacing.
        """
        if cause == "stop":
            for old in list(inst.old):
                self._stop_old(inst, old)
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
        if inst.run is run:
            inst.timer = None
        if inst.run is run or run in inst.old:
            log.warning("instance did not stop in time; killing what is left of it",
                        extra={"fields": self.log_fields(inst, pid=run.child.pid)})
            run.child.kill()

    # --- replacing a process with a surge (rolling restarts) ------------------------------

    def surge(self, inst: Instance) -> asyncio.Future[State]:
        """Start a new process for a running instance while the old one keeps serving; the
        old one is stopped once the new one is ready. Resolves once the new one settled."""
        assert inst.state == State.RUNNING and inst.run is not None
        old, inst.run = inst.run, None
        old.end()  # no more checks: it is on its way out
        inst.old.append(old)
        self._start(inst)
        return self._wait(inst, _settled)

    def _stop_old(self, inst: Instance, old: Run, replaced: bool = False) -> None:
        """Stop a replaced process (stop signal, SIGKILL at the stop timeout)."""
        if old.stop_deadline is not None:
            return
        if replaced:  # a rollout's restart, counted like procpilotctl restart
            self.restarts["manual"] += 1
            inst.restarts += 1
        old.child.signal(self.config.stop.signal)
        old.stop_deadline = self._now() + self.config.stop.timeout
        self.rt.loop.call_later(self.config.stop.timeout, self._kill, inst, old)

    def _old_exited(self, inst: Instance, old: Run, status: ExitStatus) -> None:
        inst.old.remove(old)
        if old.stop_deadline is not None:
            old.child.finish(old.stop_deadline)
        else:
            old.child.kill()
            log.warning("replaced process exited before its successor was ready",
                        extra={"fields": self.log_fields(inst, pid=old.child.pid,
                                                          status=status.describe())})
        inst.waiters.notify(inst.state)  # a stop may be waiting for it
        self.changes.notify()  # it may have been what kept the instance ready

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
        """Stop instances; futures resolve once each is stopped and what it was replacing
        is gone."""
        waits = []
        for inst in self.select(index):
            self.stop_for(inst, "stop")
            waits.append(self._wait(inst, _gone(inst)))
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

    def send(self, index: int | None, sig: int) -> list[str]:
        """Send sig to the process group of each selected instance (and of a process it is
        replacing); the ids of the instances it reached."""
        reached = []
        for inst in self.select(index):
            runs = [r for r in (inst.run, *inst.old) if r is not None]
            if [r for r in runs if r.child.signal(sig)]:
                reached.append(inst.id)
        return reached

    def scale(self, count: int) -> list[asyncio.Future[State]]:
        """Set the desired count: new slots start, the newest instances stop first."""
        if count != self.desired:
            self._emit("scaled", None, None, desired=count)
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

    def reconfigure(self, config: ProgramConfig) -> bool:
        """Apply a changed config at once; True when that is all it takes.

        What needs no new process (the count, the autoscale section, hooks, dependencies,
        rollout) applies in place, a pool keeping its count clamped to the new bounds.
        Anything else holds for every process started from now on (a restart, a crash's),
        and the instances running the old one are replaced later by replace(), as the new
        rollout section says (the supervisor orders replacements along depends_on).
        """
        live = {"instances": self.config.instances, "autoscale": self.config.autoscale,
                "hooks": self.config.hooks, "depends_on": self.config.depends_on,
                "rollout": self.config.rollout}
        in_place = config.model_copy(update=live) == self.config and not self.removed
        self.config = config
        self.changes.notify()
        if in_place:
            self.scale(self._kept_count())
            return True
        self._stop_first |= self.removed  # back in the config: a fresh start, not a rollout
        self.removed = False
        self.outdated = True
        self.release_sockets()
        self.release_logs()
        for inst in self.instances.values():
            inst.output = None  # new processes write where the new config says
        return False

    async def replace(self) -> None:
        """Replace the instances that run an older config (see reconfigure): one by one
        with rollout strategy rolling, else all stopped, then started."""
        async with self.lock:
            if not self.outdated or self.removed:  # done by an earlier call, or left
                return
            stop_first, self.outdated, self._stop_first = self._stop_first, False, False
            if self.config.rollout.strategy == "rolling" and not stop_first:
                await self._roll_out()
            else:
                await self._restart_all()

    async def _roll_out(self) -> None:
        """The count applied first, then the instances that were there replaced one by one."""
        before = {i.index for i in self.instances.values() if not i.retire}
        await wait_all(self.scale(self._kept_count()))
        outcome = await rolling.roll(self, sorted(before & set(self.instances)))
        level = logging.ERROR if outcome.halted else logging.INFO
        log.log(level, f"rollout {outcome.ending}", extra={"fields": {
            "program": self.name, **outcome.fields()}})

    async def _restart_all(self) -> None:
        """Every instance stopped, the slots made anew for the config's count, started."""
        await wait_all(self.stop())
        self.close_logs()
        self.instances.clear()
        self.changes.notify()
        self.desired = self._configured_count()
        self.ensure_instances()
        if self.config.autostart and not self.removed:
            await wait_all(self.start())

    async def roll(self, index: int | None = None) -> rolling.Outcome:
        """procpilotctl restart --rolling: replace instances one by one, each once ready."""
        async with self.lock:
            return await rolling.roll(self, [i.index for i in self.select(index)])

    async def remove(self) -> None:
        """Stop every instance for good (the program left the config). The stop comes at
        once: a rollout under way (holding the lock) sees it and ends, instead of going on
        with processes of a program that is gone."""
        self.removed = True  # at once: a reload before the lock is ours must see it
        self.changes.notify()
        self.stop()
        async with self.lock:
            await wait_all(self.stop())  # also what a replacement under way started
            self.close_logs()
            self.release_sockets()
            self.release_logs()

    # --- measurements --------------------------------------------------------------------

    def running(self) -> list[Run]:
        """The instances' processes, those being replaced included."""
        return [r for i in self.instances.values() for r in (i.run, *i.old) if r is not None]

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
        instances = tuple(self.instances[k].view(now, wall) for k in sorted(self.instances))
        return ProgramView(
            program=self.name,
            state=self.state.value,
            desired=self.desired,
            pool=pool,
            instances=instances,
            restarts=dict(self.restarts),
            exit_code=self.exit_code,
            limits=self.limits(),
            cpu_user=self.cpu_user,
            cpu_system=self.cpu_system,
            cpu_throttled=self.cpu_throttled,
            waiting_for=self.waiting_for,
        )


async def wait_all(waits: list[asyncio.Future[State]]) -> list[State]:
    """Results of the futures from start/stop/restart/scale."""
    return list(await asyncio.gather(*waits)) if waits else []
