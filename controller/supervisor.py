"""The Supervisor: one asyncio loop running every program, the control socket and sampling.

Start-up goes by ascending priority, each group once its instances have settled (left
starting: running, or already known to be failing, so a crash loop does not hold up the
next group forever). Shutdown goes the other way, each group stopped and gone before the
next. Reload diffs the new config against the running one by equality. One measurement per
sampling tick (``Runtime.measure``) takes every instance's memory and CPU, for the limits,
the metrics and the autoscalers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
from collections import Counter
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from procpilot.controller import config as config_mod
from procpilot.controller.config import ConfigError, ControllerConfig, ProgramConfig
from procpilot.controller.control import CommandError, ControlServer
from procpilot.controller.limits import enforce_memory_limit
from procpilot.controller.pool import PoolScaler
from procpilot.controller.program import Program, wait_all
from procpilot.controller.protocol import MAX_INSTANCES
from procpilot.controller.runtime import SupervisorRuntime
from procpilot.controller.states import State
from procpilot.controller.view import ControllerView, PoolView

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
        self.reloads: Counter[str] = Counter()
        # Like Prometheus's own: did the last attempt work, and when did one last work.
        self.last_reload_ok = True
        self.last_reload_success = rt.wall()  # the start-up load counts
        self._done = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sampler: asyncio.TimerHandle | None = None
        self.control: ControlServer | None = None  # while run() serves the socket
        self._refreshed: dict[str, float] = {}  # program -> loop time of its last refresh

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> int:
        """Supervise until asked to shut down; returns the exit code (0 after a clean stop)."""
        control = ControlServer(self.socket_path, self.handle, self.config.control.allowed_uids)
        self.control = control
        loop = self.loop
        self.rt.install()
        loop.add_signal_handler(signal.SIGTERM, self.request_shutdown)
        loop.add_signal_handler(signal.SIGINT, self.request_shutdown)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn_task(self._reload_logged()))
        loop.add_signal_handler(signal.SIGUSR1, self.reopen_logs)
        try:
            await control.start()
            self.start()
            log.info("controller started", extra={"fields": {
                "programs": len(self.programs), "socket": self.socket_path}})
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
        """Add every configured program, start them by priority, begin sampling."""
        for name, cfg in self.config.programs.items():
            self._add(name, cfg)
        self._spawn_task(self._start_groups(list(self.programs.values())))
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
        if self._sampler is not None:
            self._sampler.cancel()
        for scaler in self.scalers.values():
            scaler.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for priority in sorted({p.config.priority for p in self.programs.values()}, reverse=True):
            group = [p for p in self.programs.values() if p.config.priority == priority]
            log.info("stopping priority group", extra={"fields": {
                "priority": priority, "programs": ",".join(p.name for p in group)}})
            await wait_all([w for p in group for w in p.stop()])
        # Each leftover group is killed at its stop timeout; the bound covers a member that
        # even SIGKILL cannot end at once (uninterruptible sleep) or that we may not signal.
        longest = max((p.config.stop.timeout for p in self.programs.values()), default=0.0)
        await self.rt.wind_down(longest + DRAIN_GRACE, READER_DRAIN_SECONDS)

    def _spawn_task(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._done.is_set():
            coro.close()
            return
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("controller task failed", exc_info=task.exception())

    def _add(self, name: str, cfg: ProgramConfig) -> Program:
        program = self.programs[name] = Program(name, cfg, self.rt)
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

    async def _reconfigure(self, program: Program, cfg: ProgramConfig) -> None:
        scaler = self.scalers.get(program.name)
        if scaler is not None:
            scaler.close()
        in_place = await program.reconfigure(cfg)
        if in_place and scaler is not None and cfg.autoscale is not None:
            scaler.retarget(cfg.autoscale)  # the same pool, new targets: no restart
            if not self._done.is_set():
                scaler.start()
        else:
            self._restart_scaler(program)

    async def _start_groups(self, programs: Iterable[Program]) -> None:
        """Autostart programs by ascending priority, each group after the previous settled."""
        todo = [p for p in programs if p.config.autostart]
        for priority in sorted({p.config.priority for p in todo}):
            group = [p for p in todo if p.config.priority == priority]
            log.info("starting priority group", extra={"fields": {
                "priority": priority, "programs": ",".join(p.name for p in group)}})
            await wait_all([w for p in group for w in p.start()])

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
            self.reloads["failure"] += 1
            self.last_reload_ok = False
            log.error("config reload refused; keeping the running config",
                      extra={"fields": {"err": str(e)}})
            raise CommandError(f"reload refused, running config kept: {e}") from None
        self.reloads["success"] += 1
        self.last_reload_ok, self.last_reload_success = True, self.rt.wall()
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
            self._spawn_task(self._remove(current[name]))
        for name in changed:
            self._spawn_task(self._reconfigure(current[name], new.programs[name]))
        self._spawn_task(self._start_groups([self._add(n, new.programs[n]) for n in added]))
        summary = (f"reloaded: added {added or '-'}, removed {removed or '-'}, "
                   f"changed {changed or '-'}, unchanged "
                   f"{len(new.programs) - len(added) - len(changed)}")
        log.info("config reloaded", extra={"fields": {
            "added": ",".join(added), "removed": ",".join(removed),
            "changed": ",".join(changed)}})
        return summary

    async def _remove(self, program: Program) -> None:
        scaler = self.scalers.pop(program.name, None)
        if scaler is not None:
            scaler.close()
        await program.remove()
        if self.programs.get(program.name) is program and program.name not in self.config.programs:
            del self.programs[program.name]

    # --- reading -------------------------------------------------------------------------

    def view(self) -> ControllerView:
        programs = sorted(self.programs.values(), key=lambda p: (p.config.priority, p.name))
        self.refresh(programs)
        return ControllerView(
            programs=tuple(p.view(self._pool_view(p)) for p in programs),
            reaped_processes=self.rt.reaped_orphans,
            reloads=dict(self.reloads),
            last_reload_ok=self.last_reload_ok,
            last_reload_success=self.last_reload_success,
            isolation=self.rt.isolation,
            leftovers_killed=self.rt.leftovers_killed,
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
        if cmd in ("start", "stop", "restart"):
            return await self._act(cmd, request.get("target"))
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
        targets = self._targets(target)
        waits = []
        for program, index in targets:
            action = {"start": program.start, "stop": program.stop,
                      "restart": program.restart}[cmd]
            waits += action(index)
        await wait_all(waits)
        insts = [i for p, index in targets for i in p.select(index)]
        if not insts:
            return f"{cmd}: nothing to do"
        return ", ".join(f"{i.id} {i.state.value}" for i in insts)

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
