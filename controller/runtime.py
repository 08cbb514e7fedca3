"""Everything the controller does to the operating system, behind one seam.

Programs, the supervisor and pools decide; a :class:`Runtime` carries it out: start a
process (with the listening sockets it is passed, and a NOTIFY_SOCKET whose messages come
back to the program), signal its group, let what is left of it finish or kill it, tell
whether the kernel OOM-killed it, run a health check, run a hook, measure memory and CPU.
:class:`ProcessRuntime` does it with real processes, sockets, the reaper and procfs; tests
pass a runtime that does it in memory, so the state machine, pools and reload run in
milliseconds without processes.

Time is the event loop's clock everywhere (timers, deadlines, uptimes), so a test loop
with virtual time drives all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from procpilot.controller import health, http, metricsources
from procpilot.controller.autoscaleconfig import TotalMetric
from procpilot.controller.config import Health, Hook
from procpilot.controller.confinement import Confinement
from procpilot.controller.control import remove_stale
from procpilot.controller.isolation import (
    Backend,
    Cell,
    IsolationError,
    kill_and_remove,
)
from procpilot.controller.isolation import Usage as CellUsage
from procpilot.controller.logsink import LogFiles, PipeReader, Sink
from procpilot.controller.notify import Notice, NotifySocket
from procpilot.controller.reaper import Reaper
from procpilot.controller.spawn import (
    SpawnSpec,
    inherited_environment,
    run_to_exit,
    signal_group,
    spawn,
)
from procpilot.controller.states import ExitStatus
from procpilot.controller.usage import tree_members
from procpilot.core import sdnotify
from procpilot.core.cpu import CpuTracker
from procpilot.core.procfs import FS, ProcReader, has_children_files, subtree
from procpilot.core.procfs.cgroups import read_cgroups
from procpilot.core.procfs.hoststat import read_busy_seconds
from procpilot.core.procfs.vmstat import read_oom_kills
from procpilot.core.web.flags import parse_listen_address

log = logging.getLogger("procpilot.runtime")
LEFTOVER_KILL_SECONDS = 5.0  # at start-up, per cell an earlier controller left
RECLAIM_POLL = 0.05  # seconds between looks at a killed cell before removing it
RECLAIM_ATTEMPTS = 200  # ten seconds of them


class SpawnFailed(Exception):
    """The program could not be started at all; str() says why (no such file, bad user...)."""


class HookFailed(Exception):
    """A hook ran and did not succeed; str() says how (exit status, HTTP status, error)."""


OnNotice = Callable[[Notice], None]


class Listener(Protocol):
    """A listening socket the controller holds for a program's instances."""

    @property
    def fd(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Usage:
    """One instance's process tree (or cgroup) at one measurement."""

    rss_bytes: int | None  # its process tree's RSS, or its cgroup's anonymous memory
    cpu_user: float  # seconds used since the instance's process started, its tree included
    cpu_system: float
    cgroup_memory_bytes: int | None = None  # the cgroup's charge, page cache included
    cpu_throttled: float | None = None  # seconds, since the process started
    tasks: int | None = None  # processes and threads


class Child(Protocol):
    """One started instance process, and whatever it starts in turn."""

    @property
    def pid(self) -> int: ...

    @property
    def exited(self) -> asyncio.Future[ExitStatus]:
        """Resolves with the main process's exit status."""

    def signal(self, sig: int) -> bool:
        """Send sig to the process group; False when nothing is left in it."""

    def kill(self) -> None:
        """SIGKILL everything the child started that is still there."""

    def finish(self, deadline: float) -> asyncio.Future[None] | None:
        """Let what is left after the main process exited end by itself until ``deadline``
        (loop clock), then kill it; the future resolves once nothing is left, None when
        nothing was left to begin with."""

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer ended the main process (ask after it exited)."""

    def drain(self) -> None:
        """Hand the output already in its pipes to its sinks (when it exited, its last
        lines, so that they are in the tail before the exit is told)."""

    @property
    def kernel_limits(self) -> frozenset[str]:
        """The limits of its confinement that the kernel enforces (memory, cpu, tasks...)."""

    @property
    def accounted(self) -> bool:
        """Whether the kernel counts its memory and CPU (a cgroup): then a measurement is
        exact whenever it is taken, and needs no polling in between."""


class Runtime(Protocol):
    loop: asyncio.AbstractEventLoop
    logs: LogFiles  # instance log files, shared by the processes of one slot

    def wall(self) -> float:
        """Unix time, for what status and metrics report."""

    def rand(self) -> float:
        """Uniform in [0, 1), for backoff jitter."""

    def start(self, spec: SpawnSpec, sink: Sink, confinement: Confinement, *,
              stderr: Sink | None = None, notify: OnNotice | None = None) -> Child:
        """Start spec confined, with its output going to sink (stderr apart, when given);
        with ``notify``, give it a NOTIFY_SOCKET and pass what it and its cell send there
        to notify. SpawnFailed when it cannot start."""

    def listen(self, address: str) -> Listener:
        """Bind and listen on ``host:port`` or ``unix:/path``; OSError when it cannot."""

    async def healthy(self, check: Health, spec: SpawnSpec) -> bool:
        """Run one health check (an exec check runs like the program itself)."""

    async def deliver(self, hook: Hook, body: bytes, env: Mapping[str, str]) -> None:
        """Run a command hook with env added to the controller's environment, or POST the
        JSON body to a webhook; HookFailed when it does not succeed. Cancelling it kills
        the command."""

    def measure(self, children: Sequence[Child]) -> dict[int, Usage]:
        """Usage of each child's tree, by pid; a child that is gone is absent."""

    def host_busy_seconds(self) -> float | None:
        """CPU seconds the whole host was busy since boot (for ``metric: system`` pools)."""

    async def read_metric(self, metric: TotalMetric) -> float:
        """One reading of a pool's work from outside it; MetricError when it fails."""

    @property
    def isolation(self) -> str:
        """The isolation backend: cgroup2, cgroup1 or none."""

    @property
    def enforceable(self) -> frozenset[str]:
        """The limits the kernel can keep here (memory, memory_high, swap, cpu, tasks)."""


class SupervisorRuntime(Runtime, Protocol):
    """What the supervisor needs beyond its programs: set-up, orphans, shutdown."""

    def install(self) -> None:
        """Take over what the controller process needs (reaping children) before starting."""

    def close(self) -> None: ...

    @property
    def reaped_orphans(self) -> int:
        """Descendants reaped that were not instances (double-forked orphans)."""

    async def wind_down(self, drain_bound: float, output_bound: float) -> None:
        """At shutdown: wait for stopped groups to finish and for their last output."""

    @property
    def leftovers_killed(self) -> int:
        """Processes found in cells left by an earlier controller, killed at start-up."""

    @property
    def notifications_rejected(self) -> int:
        """Datagrams on the notify socket no instance could be found for."""

    def tell_manager(self, state: str) -> None:
        """sd_notify the service manager that runs the controller (READY=1, STOPPING=1)."""


class SocketListener:
    """A bound, listening socket; a unix socket's file is removed when it is closed."""

    def __init__(self, address: str) -> None:
        self.path = address.removeprefix("unix:") if address.startswith("unix:") else None
        if self.path is not None:
            remove_stale(self.path, "another process")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(self.path)
                sock.listen(socket.SOMAXCONN)
            except OSError:
                sock.close()
                raise
        else:
            host, port = parse_listen_address(address)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.create_server((host, port), family=family, backlog=socket.SOMAXCONN)
        self._sock = sock  # blocking, as the programs it is passed to expect

    @property
    def fd(self) -> int:
        return self._sock.fileno()

    @property
    def closed(self) -> bool:
        return self._sock.fileno() < 0

    def close(self) -> None:
        """Once: a later close must not unlink a path another listener bound since."""
        if self.closed:
            return
        self._sock.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class ProcessChild:
    """A real instance process: its process group and its cell, its exit through the reaper."""

    def __init__(self, rt: ProcessRuntime, pid: int, exited: asyncio.Future[ExitStatus],
                 cell: Cell, readers: Sequence[PipeReader]) -> None:
        self._rt = rt
        self._pid = pid
        self._exited = exited
        self.cell = cell
        self.readers = readers
        self._oom_kills_at_start = cell.oom_kills()
        self._host_oom_kills_at_start = read_oom_kills(rt.fs)
        self._reclaiming = False
        self.cpu_user = 0.0  # accumulated by ProcessRuntime.measure over a process tree
        self.cpu_system = 0.0

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def exited(self) -> asyncio.Future[ExitStatus]:
        return self._exited

    @property
    def kernel_limits(self) -> frozenset[str]:
        return frozenset(self.cell.enforced)

    @property
    def accounted(self) -> bool:
        return self._rt.cells_account(self.cell)

    def signal(self, sig: int) -> bool:
        return signal_group(self._pid, sig)

    def kill(self) -> None:
        signal_group(self._pid, signal.SIGKILL)
        self.cell.kill()  # what left the group (setsid) but not the cell
        self._reclaim()

    def _alive(self) -> bool:
        return signal_group(self._pid, 0) or not self.cell.empty()

    def finish(self, deadline: float) -> asyncio.Future[None] | None:
        """Wait for the rest of the group and cell until deadline, then kill what is left.

        The last process of it is always reaped by the controller (processes left behind
        re-parent to it), so checking after each orphan reap sees it gone.
        """
        if not self._alive():
            self._reclaim()
            return None
        rt = self._rt
        done: asyncio.Future[None] = rt.loop.create_future()
        timer = rt.loop.call_later(max(deadline - rt.loop.time(), 0.0), self.kill)

        def check() -> None:
            if not self._alive():
                timer.cancel()
                rt.reaper.orphan_listeners.discard(check)
                rt.draining.discard(done)
                done.set_result(None)
                self._reclaim()

        rt.reaper.orphan_listeners.add(check)
        rt.draining.add(done)
        return done

    def _reclaim(self, attempt: int = 0) -> None:
        """Remove the cell once it is empty (a killed process takes a moment to go)."""
        if self._reclaiming and attempt == 0:
            return
        self._reclaiming = True
        self._rt.reclaiming.add(self)
        if self.cell.remove():
            self._rt.reclaiming.discard(self)
            return
        if attempt >= RECLAIM_ATTEMPTS:
            log.warning("cell still has processes; left in place, removed at the next start",
                        extra={"fields": {"cell": self.cell.name, "pids": self.cell.pids()}})
            return
        self.cell.kill()
        self._rt.loop.call_later(RECLAIM_POLL, self._reclaim, attempt + 1)

    def drain(self) -> None:
        for reader in self.readers:
            reader.drain()

    def oom_killed(self) -> bool:
        """Exact where the cell counts OOM kills; else guessed from the host's counter (it
        rose while this process ran), which mistakes an OOM kill elsewhere for this one."""
        before, now = self._oom_kills_at_start, self.cell.oom_kills()
        if before is not None and now is not None:
            return now > before
        before, now = self._host_oom_kills_at_start, read_oom_kills(self._rt.fs)
        return before is not None and now is not None and now > before


class ProcessRuntime:
    """The real runtime: processes in their own groups and cells, the reaper, procfs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fs: FS, backend: Backend) -> None:
        self.loop = loop
        self.fs = fs
        self.backend = backend
        self.reaper = Reaper(loop)
        self.logs = LogFiles()
        self.readers: set[PipeReader] = set()  # output pipes still open (leftovers included)
        self.draining: set[asyncio.Future[None]] = set()  # groups finishing after a stop
        self.leftovers_killed = 0
        self.reclaiming: set[ProcessChild] = set()  # cells waiting to be empty and removed
        self._cpu: CpuTracker[tuple[int, int]] = CpuTracker()
        self._walk_subtree = has_children_files(fs)
        self._procfs = ProcReader(fs)
        self._runs = itertools.count(1)
        self._cells_account: bool | None = None
        self._notify: NotifySocket | None = None  # bound when a program first needs it
        self._listening: dict[int, tuple[ProcessChild, OnNotice]] = {}  # main pid ->
        self._cell_pids: dict[str, int] = {}  # cell name -> main pid, of those listened to
        self._listeners: set[SocketListener] = set()

    @property
    def isolation(self) -> str:
        return self.backend.name

    @property
    def enforceable(self) -> frozenset[str]:
        return frozenset(self.backend.supports)

    def install(self) -> None:
        """Become the reaper, then end what an earlier controller left in its cells."""
        self.reaper.install()
        for cell in self.backend.leftovers():
            pids = cell.pids()
            removed = kill_and_remove(cell, timeout=LEFTOVER_KILL_SECONDS)
            self.leftovers_killed += len(pids)
            log.warning("killed what an earlier controller left", extra={"fields": {
                "cell": cell.name, "processes": len(pids), "removed": removed}})

    def tell_manager(self, state: str) -> None:
        sdnotify.notify(state)

    def close(self) -> None:
        """After shutdown: the last cells are emptied and removed before the root goes."""
        for child in list(self.reclaiming):
            kill_and_remove(child.cell, timeout=RECLAIM_POLL * RECLAIM_ATTEMPTS)
        self.reaper.uninstall()
        self.logs.close_all()
        self.backend.close()
        if self._notify is not None:
            self._notify.close()
        for listener in self._listeners:
            listener.close()

    @property
    def reaped_orphans(self) -> int:
        return self.reaper.reaped_unmanaged

    def wall(self) -> float:
        return time.time()

    def rand(self) -> float:
        return random.random()

    @property
    def notifications_rejected(self) -> int:
        return self._notify.rejected if self._notify is not None else 0

    def start(self, spec: SpawnSpec, sink: Sink, confinement: Confinement, *,
              stderr: Sink | None = None, notify: OnNotice | None = None) -> ProcessChild:
        spec = replace(spec, separate_stderr=stderr is not None)
        if notify is not None:
            try:
                if self._notify is None:
                    self._notify = NotifySocket(self.loop, self._notice)
            except OSError as e:
                raise SpawnFailed(f"cannot bind the notify socket: {e.strerror or e}") from e
            env = spec.env if spec.env is not None else os.environ
            spec = replace(spec, env={**env, "NOTIFY_SOCKET": self._notify.address})
        try:
            cell = self.backend.create(f"{confinement.name}-{next(self._runs)}",
                                       confinement.limits)
        except (IsolationError, ValueError) as e:
            raise SpawnFailed(f"cannot make its cgroup: {e}") from e
        try:
            child = spawn(spec, self.reaper, [*cell.enter_argv(), *confinement.argv()])
        except (OSError, KeyError, ValueError, subprocess.SubprocessError) as e:
            cell.remove()
            raise SpawnFailed(str(e)) from e
        readers = [self._read(fd, to) for fd, to in ((child.output_fd, sink),
                                                      (child.error_fd, stderr))
                   if fd is not None and to is not None]
        started = ProcessChild(self, child.pid, child.exited, cell, readers)
        if notify is not None:
            self._listen_to(started, notify)
        return started

    def _read(self, fd: int, sink: Sink) -> PipeReader:
        reader = PipeReader(self.loop, fd, sink)
        self.readers.add(reader)
        reader.done.add_done_callback(lambda _: self.readers.discard(reader))
        return reader

    def _listen_to(self, child: ProcessChild, notify: OnNotice) -> None:
        pid, name = child.pid, child.cell.name
        self._listening[pid] = (child, notify)
        self._cell_pids[name] = pid

        def forget(_: object) -> None:
            # Only this child's entries: by now its pid may belong to a newer instance.
            if self._listening.get(pid, (None,))[0] is child:
                del self._listening[pid]
            if self._cell_pids.get(name) == pid:
                del self._cell_pids[name]

        child.exited.add_done_callback(forget)

    def _notice(self, sender: int, notice: Notice) -> bool:
        """Hand a notice to the instance the sender belongs to: its main process, a process
        of its process group, or one in its cell. False when it is none of ours."""
        found = self._listening.get(sender)
        if found is None:
            with contextlib.suppress(OSError):
                found = self._listening.get(os.getpgid(sender))
        if found is None:
            found = self._by_cell(sender)
        if found is None:
            return False
        found[1](notice)
        return True

    def _by_cell(self, sender: int) -> tuple[ProcessChild, OnNotice] | None:
        try:
            where = read_cgroups(self.fs, sender)
        except (OSError, ValueError):
            return None
        for path in {where.unified, *where.v1.values()} - {None}:
            pid = self._cell_pids.get(os.path.basename(str(path)))
            found = self._listening.get(pid) if pid is not None else None
            if found is not None and sender in found[0].cell.pids():
                return found
        return None

    def listen(self, address: str) -> SocketListener:
        listener = SocketListener(address)
        # Those closed since (a program's config dropped them) are done with.
        self._listeners = {x for x in self._listeners if not x.closed}
        self._listeners.add(listener)
        return listener

    def cells_account(self, cell: Cell) -> bool:
        """Whether cells count memory and CPU here (asked of the first cell, then kept)."""
        if self._cells_account is None:
            u = cell.usage()
            self._cells_account = None not in (u.memory_bytes, u.anon_bytes, u.cpu_user_seconds)
        return self._cells_account

    async def healthy(self, check: Health, spec: SpawnSpec) -> bool:
        return await health.check_once(check, self.reaper, spec)

    async def deliver(self, hook: Hook, body: bytes, env: Mapping[str, str]) -> None:
        if hook.command is not None:
            spec = SpawnSpec(hook.command, {**inherited_environment(), **env},
                             capture_output=False)
            try:
                status = await run_to_exit(spec, self.reaper)
            except (OSError, KeyError, ValueError, subprocess.SubprocessError) as e:
                raise HookFailed(f"cannot run: {e}") from None
            if status.code != 0:
                raise HookFailed(status.describe())
            return
        assert hook.url is not None
        try:
            code = await http.request(hook.url, "POST", body)
        except (OSError, ValueError) as e:
            raise HookFailed(str(e) or type(e).__name__) from None
        if not 200 <= code < 300:
            raise HookFailed(f"HTTP status {code}")

    def measure(self, children: Sequence[Child]) -> dict[int, Usage]:
        """Each child's cgroup where it counts memory and CPU; the others' process trees,
        from one procfs pass (the controller's subtree, or all of /proc without the
        children files)."""
        usage: dict[int, Usage] = {}
        walk = []
        for child in children:
            assert isinstance(child, ProcessChild)
            if child.accounted:
                usage[child.pid] = _cell_usage(child.cell.usage())
            else:
                walk.append(child)
        if walk:
            usage.update(self._walk(walk))
        return usage

    def _walk(self, children: list[ProcessChild]) -> dict[int, Usage]:
        procs = (subtree(self.fs, os.getpid()) if self._walk_subtree
                 else self._procfs.snapshot().procs)
        members = tree_members(procs, [c.pid for c in children])
        usage = {}
        for child in children:
            tree = members.get(child.pid, [])
            for p in tree:
                used = self._cpu.observe(p.key, p.utime, p.stime)
                child.cpu_user += used.user
                child.cpu_system += used.system
            if tree:
                usage[child.pid] = Usage(sum(p.rss_bytes for p in tree),
                                         child.cpu_user, child.cpu_system,
                                         tasks=sum(p.num_threads for p in tree))
        self._cpu.sweep()
        return usage

    def host_busy_seconds(self) -> float | None:
        return read_busy_seconds(self.fs)

    async def read_metric(self, metric: TotalMetric) -> float:
        return await metricsources.read(metric, self.reaper)

    async def wind_down(self, drain_bound: float, output_bound: float) -> None:
        """At shutdown: wait for stopped groups to finish and for their last output."""
        if self.draining:
            await asyncio.wait(list(self.draining), timeout=drain_bound)
        if self.readers:
            await asyncio.wait([r.done for r in self.readers], timeout=output_bound)
        for reader in list(self.readers):
            reader.close()


def _cell_usage(u: CellUsage) -> Usage:
    return Usage(u.anon_bytes, u.cpu_user_seconds or 0.0, u.cpu_system_seconds or 0.0,
                 cgroup_memory_bytes=u.memory_bytes, cpu_throttled=u.cpu_throttled_seconds,
                 tasks=u.tasks)
