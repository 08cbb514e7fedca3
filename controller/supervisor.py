"""The Supervisor: one asyncio loop running every program, the control socket and sampling.

Start-up goes in waves (``depends``): by ascending priority, and within a priority after
the programs depended on, each wave once its instances have settled (left starting: ready,
or already known to be failing, so a crash loop does not hold up the next wave forever). A
program whose dependencies are not all ready when its turn comes waits for them on its own
and starts once they are, unless it is stopped or removed meanwhile. Starting a program
starts what it depends on; nothing starts once shutdown began. Shutdown goes the other way,
each wave stopped and gone before the next. Reload diffs the new config against the running
one by equality; changed programs take their new config at once, and their instances are
replaced (rolled out) after those of the changed programs they depend on. One measurement per
sampling tick (``Runtime.measure``) takes every instance's memory and CPU, for the limits,
the metrics and the autoscalers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
from collections.abc import Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from procpilot.controller import config as config_mod
from procpilot.controller import depends
from procpilot.controller.config import ConfigError, ControllerConfig, ProgramConfig
from procpilot.controller.control import CommandError, ControlServer
from procpilot.controller.hooks import Event, Hooks
from procpilot.controller.instance import Changes, Instance
from procpilot.controller.limits import enforce_memory_limit
from procpilot.controller.pool import PoolScaler
from procpilot.controller.program import Program, wait_all
from procpilot.controller.protocol import MAX_INSTANCES
from procpilot.controller.runtime import SupervisorRuntime
from procpilot.controller.states import State
from procpilot.controller.view import ControllerView, PoolView
from procpilot.core.reloads import Reloads
from procpilot.core.signals import signal_name

if TYPE_CHECKING:
    from procpilot.controller.protocol import Explained, Request

log = logging.getLogger("procpilot.controller")
CHANGES = frozenset({"start", "stop", "restart", "reload", "scale"})  # refused in shutdown
DRAIN_GRACE = 5.0  # seconds past the longest stop timeout that shutdown waits for leftovers
REFRESH = 1.0  # seconds a measurement of cgroup-accounted instances is reused for

READER_DRAIN_SECONDS = 2.0  # at shutdown, how long leftover output may still trickle in


def parse_target(target: object) -> tuple[str, int | None]:
    """'all', 'web' or 'web:1' -> (name, index or None)."""
    if not isinstance(target, str) or not target:
        raise CommandError('"target" must be "all", PROGRAM or PROGRAM:INSTANCE')
    name, sep, index = target.partition(":")
    if not sep:
        return name, None
    if not (index.isascii() and index.isdigit()):
        raise CommandError(f"{target!r}: instance must be a number, as in {name}:0")
    return name, int(index)


class Supervisor:
    """Every program of one config, on one loop, through one runtime."""

    def __init__(self, config: ControllerConfig, config_path: str, rt: SupervisorRuntime,
                 socket_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.socket_path = socket_path or config.control.socket
        self.rt = rt
        self.loop = rt.loop
        self.programs: dict[str, Program] = {}
        self.scalers: dict[str, PoolScaler] = {}  # kept while closed, until replaced
        self.reloads = Reloads.since_start(rt.wall)
        self._done = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sampler: asyncio.TimerHandle | None = None
        self.control: ControlServer | None = None  # while run() serves the socket
        self._refreshed: dict[str, float] = {}  # program -> loop time of its last refresh
        self.hooks = Hooks(rt)
        self.changes = Changes()  # a reload, a program gone: waiting dependents look again
        # Starts waiting for dependencies, by (program, instance or None for all of it):
        self._waiting: dict[tuple[str, int | None], asyncio.Task[None]] = {}

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> int:
        """Supervise until asked to shut down; returns the exit code (0 after a clean stop)."""
        control = ControlServer(self.socket_path, self.handle, self.config.control.allowed_uids)
        # The socket names this controller's cells: while another controller listens on it,
        # its cells are not leftovers, so nothing is touched before the socket is ours.
        control.claim()
        self.control = control
        loop = self.loop
        try:
            self.rt.install()
            loop.add_signal_handler(signal.SIGTERM, self.request_shutdown)
            loop.add_signal_handler(signal.SIGINT, self.request_shutdown)
            loop.add_signal_handler(signal.SIGHUP,
                                    lambda: self._spawn_task(self._reload_logged()))
            loop.add_signal_handler(signal.SIGUSR1, self.reopen_logs)
            await control.start()
            self.start()
            log.info("controller started", extra={"fields": {
                "programs": len(self.programs), "socket": self.socket_path}})
            self.rt.tell_manager("READY=1")
            await self._done.wait()
            await self.shutdown()
        finally:
            # Stop requests from now on stay pending until the process is gone: with the
            # handlers removed their default action would turn an orderly exit into -15.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
                loop.remove_signal_handler(sig)
            await control.close()
            self.rt.close()
        log.info("controller stopped")
        return 0

    def start(self) -> None:
        """Add every configured program, start them in order, begin sampling."""
        for name, cfg in self.config.programs.items():
            self._add(name, cfg)
        autostart = {name: None for name, cfg in self.config.programs.items() if cfg.autostart}
        self._spawn_task(self._start_programs(autostart))
        self._schedule_sample()

    def request_shutdown(self) -> None:
        if self._done.is_set():
            log.info("already shutting down")
            return
        log.info("shutting down")
        self._done.set()

    async def shutdown(self) -> None:
        """Stop every program in reverse priority order and wait for what they left."""
        self._done.set()
        self.rt.tell_manager("STOPPING=1")
        if self._sampler is not None:
            self._sampler.cancel()
        for scaler in self.scalers.values():
            scaler.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_programs(dict.fromkeys(self.programs))
        # Each leftover group is killed at its stop timeout; the bound covers a member that
        # even SIGKILL cannot end at once (uninterruptible sleep) or that we may not signal.
        longest = max((p.config.stop.timeout for p in self.programs.values()), default=0.0)
        await self.rt.wind_down(longest + DRAIN_GRACE, READER_DRAIN_SECONDS)
        hooks = [*self.config.hooks, *(h for p in self.programs.values() for h in p.config.hooks)]
        await self.hooks.close(max((h.timeout for h in hooks), default=0.0))

    def _spawn_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any] | None:
        if self._done.is_set():
            coro.close()
            return None
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("controller task failed", exc_info=task.exception())

    def _add(self, name: str, cfg: ProgramConfig) -> Program:
        def emit(event: Event) -> None:
            self.hooks.emit([*program.config.hooks, *self.config.hooks], event)

        program = self.programs[name] = Program(name, cfg, self.rt, emit)
        program.ensure_instances()
        self._restart_scaler(program)
        return program

    def _restart_scaler(self, program: Program) -> None:
        """(Re)start the autoscaler of a pool, after it was added or its config changed."""
        old = self.scalers.pop(program.name, None)
        if old is not None:
            old.close()
        if program.config.autoscale is not None and not self._done.is_set():
            scaler = self.scalers[program.name] = PoolScaler(
                program, lambda: self.refresh([program]))
            scaler.start()

    def _reconfigure(self, program: Program, cfg: ProgramConfig) -> bool:
        """Give program its new config; True when its instances are to be replaced (its
        autoscaler stays closed until then)."""
        scaler = self.scalers.get(program.name)
        if scaler is not None:
            scaler.close()
        if not program.reconfigure(cfg):
            return True
        if scaler is not None and cfg.autoscale is not None:
            scaler.retarget(cfg.autoscale)  # the same pool, new targets: no restart
            if not self._done.is_set():
                scaler.start()
        else:
            self._restart_scaler(program)
        return False

    # --- order (depends_on and priority) --------------------------------------------------

    def _waves(self, names: Iterable[str], with_dependencies: bool = False
               ) -> list[list[Program]]:
        """These programs (and what they depend on) in start order (see depends.waves). A
        program on its way out of the config keeps the place its old config gave it."""
        cfgs = {n: self.config.programs.get(n, p.config) for n, p in self.programs.items()}
        graph = {n: c.depends_on for n, c in cfgs.items()}
        priority = {n: c.priority for n, c in cfgs.items()}
        chosen = depends.closure(names, graph) if with_dependencies else set(names)
        return [[self.programs[n] for n in wave] for wave in depends.waves(
            chosen & set(graph), graph, priority)]

    def _unready(self, program: Program) -> list[Program]:
        """The dependencies of program with an instance that is not ready."""
        cfg = self.config.programs.get(program.name, program.config)
        return [dep for dep in (self.programs[n] for n in cfg.depends_on if n in self.programs)
                if _unready_instances(dep)]

    async def _start_programs(self, targets: Mapping[str, int | None]) -> None:
        """Start these programs (an instance, or all of each), and before them what they
        depend on, wave by wave; one whose dependencies are not ready waits on its own."""
        for wave in self._waves(targets, with_dependencies=True):
            if self._done.is_set():  # shutdown stops what runs; the next wave must not start
                log.info("shutting down: not starting the rest")
                return
            log.info("starting programs", extra={"fields": {
                "priority": wave[0].config.priority, "programs": ",".join(p.name for p in wave)}})
            waits = []
            for program in wave:
                if unready := self._unready(program):
                    self._wait_then_start(program, targets.get(program.name), unready)
                else:
                    waits += program.start(targets.get(program.name))
            await wait_all(waits)

    def _wait_then_start(self, program: Program, index: int | None,
                         unready: list[Program]) -> None:
        """Start program (or one instance) once its dependencies are ready, in a task that
        stopping or removing the program cancels; a second start of it joins the first."""
        key = (program.name, index)
        if key in self._waiting:
            return
        program.waiting_for = tuple(p.name for p in unready)  # before any answer
        log.info("waiting for dependencies to be ready", extra={"fields": {
            "program": program.name, "dependencies": ",".join(program.waiting_for)}})
        task = self._spawn_task(self._start_when_ready(program, index))
        if task is not None:
            self._waiting[key] = task
            task.add_done_callback(lambda _: self._waiting.pop(key, None))

    def _cancel_waits(self, name: str) -> None:
        """The operator stopped the program, or it left the config: it starts no more."""
        for (waiting, _), task in list(self._waiting.items()):
            if waiting == name:
                task.cancel()
        if name in self.programs:
            self.programs[name].waiting_for = ()

    async def _start_when_ready(self, program: Program, index: int | None) -> None:
        """Look again at every change of a dependency that is not ready (an instance moved
        or went, its config changed, it was removed) and at every reload, which may have
        changed what program depends on."""
        try:
            while (unready := self._unready(program)) and not program.removed:
                names = tuple(p.name for p in unready)
                if names != program.waiting_for:
                    log.info("waiting for dependencies to be ready", extra={"fields": {
                        "program": program.name, "dependencies": ",".join(names)}})
                program.waiting_for = names
                changes = [self.changes.next(), *(p.changes.next() for p in unready)]
                await asyncio.wait(changes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            program.waiting_for = ()
        if not program.removed and not self._done.is_set():
            await wait_all(program.start(index))

    async def _stop_programs(self, targets: Mapping[str, int | None]) -> None:
        """Stop these programs (an instance, or all of each) in reverse start order: what
        depends on a program stops before it. A start still waiting for their dependencies
        is called off."""
        for name in targets:
            self._cancel_waits(name)
        for wave in reversed(self._waves(targets)):
            log.info("stopping programs", extra={"fields": {
                "priority": wave[0].config.priority, "programs": ",".join(p.name for p in wave)}})
            await wait_all([w for p in wave for w in p.stop(targets.get(p.name))])

    def reopen_logs(self) -> None:
        log.info("reopening log files")
        self.rt.logs.reopen_all()

    # --- sampling ------------------------------------------------------------------------

    def sample_interval(self) -> float:
        return min((p.config.limits.check_interval for p in self.programs.values()),
                   default=1.0)

    def _schedule_sample(self) -> None:
        self._sampler = self.loop.call_later(self.sample_interval(), self.sample)

    def sample(self) -> None:
        """Measure the instances the kernel does not account for, then check memory limits.

        Instances in cgroups that count memory and CPU need no polling: their counters are
        exact whenever read, and the kernel keeps their limits; they are measured when
        someone looks (``refresh``).
        """
        try:
            self.measure(self.programs.values(), accounted=False)
            for program in list(self.programs.values()):
                enforce_memory_limit(program)
        except Exception:  # one bad pass must not end memory checks for good
            log.exception("sampling failed")
        finally:
            self._schedule_sample()

    def measure(self, programs: Iterable[Program], accounted: bool) -> None:
        """One measurement of the programs' instances that are (not) accounted by cgroups."""
        programs = list(programs)
        children = [run.child for p in programs for run in p.running()
                    if run.child.accounted == accounted]
        if not children:
            return
        usage = self.rt.measure(children)
        now = self.loop.time()
        for program in programs:
            program.record(usage, now)

    def refresh(self, programs: Iterable[Program]) -> None:
        """Measure the cgroup-accounted instances of these programs, unless just done."""
        now = self.loop.time()
        stale = [p for p in programs if now - self._refreshed.get(p.name, -REFRESH) >= REFRESH]
        for program in stale:
            self._refreshed[program.name] = now
        self.measure(stale, accounted=True)

    # --- reload --------------------------------------------------------------------------

    async def _reload_logged(self) -> None:
        with contextlib.suppress(CommandError):
            await self.reload()

    async def reload(self) -> str:
        """Re-read the config: added start, removed stop, changed restart, the rest stay."""
        try:
            new = config_mod.load(self.config_path)
        except ConfigError as e:
            self.reloads.record(ok=False)
            log.error("config reload refused; keeping the running config",
                      extra={"fields": {"err": str(e)}})
            raise CommandError(f"reload refused, running config kept: {e}") from None
        self.reloads.record(ok=True)
        if new.control.socket != self.config.control.socket:
            log.warning("control.socket changed; takes effect on restart")
        if self.control is not None:
            self.control.allowed_uids = frozenset(new.control.allowed_uids)
        self.config = new
        current = dict(self.programs)
        added = [n for n in new.programs if n not in current]
        removed = [n for n in current if n not in new.programs]
        changed = [n for n in new.programs if n in current
                   and (current[n].removed or current[n].config != new.programs[n])]
        for name in removed:
            current[name].removed = True  # before any later reload looks
            self._cancel_waits(name)
        self._spawn_task(self._remove_all(removed))
        self._reconfigure_all(changed)
        for name in added:
            self._add(name, new.programs[name])
        self._spawn_task(self._start_programs(
            {n: None for n in added if new.programs[n].autostart}))
        summary = (f"reloaded: added {added or '-'}, removed {removed or '-'}, "
                   f"changed {changed or '-'}, unchanged "
                   f"{len(new.programs) - len(added) - len(changed)}")
        log.info("config reloaded", extra={"fields": {
            "added": ",".join(added), "removed": ",".join(removed),
            "changed": ",".join(changed)}})
        self.changes.notify()  # depends_on may have changed
        return summary

    async def _remove_all(self, names: list[str]) -> None:
        """Stop programs that left the config, dependents first, and forget them."""
        for wave in reversed(self._waves(names)):
            await asyncio.gather(*(self._remove(p) for p in wave))

    async def _remove(self, program: Program) -> None:
        if not program.removed:  # back in the config already: its replacement restarts it
            return
        scaler = self.scalers.pop(program.name, None)
        if scaler is not None:
            scaler.close()
        await program.remove()
        if self.programs.get(program.name) is program and program.name not in self.config.programs:
            del self.programs[program.name]
            self.changes.notify()

    def _reconfigure_all(self, names: list[str]) -> None:
        """Give changed programs their new config at once (a restart meanwhile runs it),
        then replace their instances in the background, each program's once the changed
        programs it depends on (directly or not) have theirs; unrelated programs, whatever
        their priority, do not wait for each other."""
        cfgs = self.config.programs
        graph = {n: c.depends_on for n, c in cfgs.items()}
        replacing: dict[str, asyncio.Task[Any]] = {}
        for program in [p for wave in self._waves(names) for p in wave if p.name in cfgs]:
            if self._reconfigure(program, cfgs[program.name]):
                after = [replacing[n] for n in depends.closure([program.name], graph)
                         if n in replacing]
                task = self._spawn_task(self._replace(program, after))
                if task is not None:
                    replacing[program.name] = task

    async def _replace(self, program: Program, after: list[asyncio.Task[Any]]) -> None:
        await asyncio.gather(*after, return_exceptions=True)  # a failed one holds up nothing
        await program.replace()
        if not program.removed:
            self._restart_scaler(program)

    # --- reading -------------------------------------------------------------------------

    def view(self) -> ControllerView:
        programs = sorted(self.programs.values(), key=lambda p: (p.config.priority, p.name))
        self.refresh(programs)
        return ControllerView(
            programs=tuple(p.view(self._pool_view(p)) for p in programs),
            reaped_processes=self.rt.reaped_orphans,
            reloads=self.reloads.copy(),
            isolation=self.rt.isolation,
            leftovers_killed=self.rt.leftovers_killed,
            hook_runs=dict(self.hooks.runs),
            hook_failures=dict(self.hooks.failures),
            notifications_rejected=self.rt.notifications_rejected,
        )

    def _pool_view(self, program: Program) -> PoolView | None:
        scaler = self.scalers.get(program.name)
        return scaler.view() if scaler is not None and program.config.autoscale else None

    def view_threadsafe(self, timeout: float = 10.0) -> ControllerView:
        """The view, from another thread (the HTTP server's), taken on the loop thread."""
        fut: concurrent.futures.Future[ControllerView] = concurrent.futures.Future()

        def take() -> None:
            try:
                fut.set_result(self.view())
            except Exception as e:  # pragma: no cover - reaches the scrape as an error
                fut.set_exception(e)

        self.loop.call_soon_threadsafe(take)
        return fut.result(timeout)

    # --- control socket ------------------------------------------------------------------

    def _targets(self, target: object) -> list[tuple[Program, int | None]]:
        name, index = parse_target(target)
        if name == "all" and index is None:
            return [(p, None) for p in self.programs.values()]
        program = self.programs.get(name)
        if program is None:
            raise CommandError(f"no such program: {name}")
        if index is not None and index not in program.instances:
            raise CommandError(f"no such instance: {name}:{index}")
        return [(program, index)]

    async def handle(self, request: Request) -> Any:
        cmd = request["cmd"]
        if cmd == "status":
            return self.view().status()
        if cmd in CHANGES and self._done.is_set():
            raise CommandError("the controller is shutting down")
        if cmd in ("start", "stop") or (cmd == "restart" and not request.get("rolling")):
            return await self._act(cmd, request.get("target"))
        if cmd == "restart":
            return await self._roll(request.get("target"))
        if cmd == "signal":
            return self._signal(request.get("target"), request.get("signal"))
        if cmd == "reload":
            return await self.reload()
        if cmd == "shutdown":
            self.loop.call_soon(self.request_shutdown)
            return "shutting down"
        if cmd == "logs":
            return self._logs(request.get("target"))
        if cmd == "explain":
            return self._explain(request.get("target"))
        return await self._scale(request.get("target"), request.get("count"),
                                 request.get("force", False))

    def _explain(self, target: object) -> list[Explained]:
        name, _ = parse_target(target)
        scaler = self.scalers.get(name)
        if scaler is None:
            raise CommandError(f"{name} is not an autoscaled pool")
        return scaler.explain()

    async def _act(self, cmd: str, target: object) -> str:
        """start and stop go in order (what a program depends on starts first and stops
        last, and starting a program starts it); restart acts on each target as it is."""
        targets = self._targets(target)
        chosen = {program.name: index for program, index in targets}
        if cmd == "start":
            await self._start_programs(chosen)
        elif cmd == "stop":
            await self._stop_programs(chosen)
        else:
            await wait_all([w for program, index in targets for w in program.restart(index)])
        insts = [i for p, index in targets for i in p.select(index)]
        waiting = [f"{p.name} waiting for {', '.join(p.waiting_for)}" for p, _ in targets
                   if p.waiting_for]
        if not insts:
            return f"{cmd}: nothing to do"
        return ", ".join([*(f"{i.id} {i.state.value}" for i in insts), *waiting])

    async def _roll(self, target: object) -> str:
        """restart --rolling: each program instance by instance (see rolling)."""
        targets = self._targets(target)
        outcomes = await asyncio.gather(*(p.roll(index) for p, index in targets))
        text = "; ".join(o.describe(p.name) for (p, _), o in zip(targets, outcomes, strict=True))
        if any(o.halted or o.removed for o in outcomes):
            raise CommandError(text)
        return text

    def _signal(self, target: object, sig: object) -> str:
        if not isinstance(sig, int):
            raise CommandError('"signal" is required')
        reached = [i for program, index in self._targets(target)
                   for i in program.send(index, sig)]
        if not reached:
            raise CommandError(f"{target}: no process to signal")
        return f"{signal_name(sig)} sent to {', '.join(reached)}"

    def _logs(self, target: object) -> dict[str, list[str]]:
        name, _ = parse_target(target)
        program = self.programs.get(name)
        if program is None:
            raise CommandError(f"no such program: {name}")
        paths = program.log_paths()
        if paths is None:
            raise CommandError(f"{name} logs to the controller's output, not to files")
        return {"files": paths}

    async def _scale(self, target: object, count: object, force: bool) -> str:
        name, index = parse_target(target)
        program = self.programs.get(name)
        if program is None or index is not None:
            raise CommandError(f"no such program: {target}")
        scaler = self.scalers.get(name) if program.config.autoscale is not None else None
        if count == "auto":
            if scaler is None:
                raise CommandError(f"{name} has no autoscale section")
            scaler.pinned = None
            return f"{name}: scaling automatically"
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise CommandError('"count" must be a number >= 0 or "auto"')
        if count > MAX_INSTANCES:
            raise CommandError(f"{count}: at most {MAX_INSTANCES} instances per program")
        auto = program.config.autoscale
        if auto is not None and not force and not auto.min <= count <= auto.max:
            raise CommandError(f"{count} is outside {name}'s autoscale bounds ({auto.min}.."
                               f"{auto.max}); say --force to pin it there anyway")
        if scaler is not None:
            scaler.pinned = count
        await wait_all(program.scale(count))
        running = sum(i.state == State.RUNNING for i in program.instances.values())
        return f"{name}: {count} desired, {running} running"


def _unready_instances(program: Program) -> list[Instance]:
    return [i for i in program.instances.values() if not i.retire and not i.ready]
