"""Everything the controller does to the operating system, behind one seam.

Programs, the supervisor and pools decide; a :class:`Runtime` carries it out: start a
process, signal its group, let what is left of it finish or kill it, tell whether the
kernel OOM-killed it, run a health check, measure memory and CPU. :class:`ProcessRuntime`
does it with real processes, the reaper and procfs; tests pass a runtime that does it in
memory, so the state machine, pools and reload run in milliseconds without processes.

Time is the event loop's clock everywhere (timers, deadlines, uptimes), so a test loop
with virtual time drives all of it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from procpilot.controller import health
from procpilot.controller.config import Health
from procpilot.controller.logsink import LogFiles, PipeReader, Sink
from procpilot.controller.reaper import Reaper
from procpilot.controller.spawn import SpawnSpec, signal_group, spawn
from procpilot.controller.states import ExitStatus
from procpilot.controller.usage import tree_members
from procpilot.core.cpu import CpuTracker
from procpilot.core.procfs import FS, ProcReader, has_children_files, subtree
from procpilot.core.procfs.hoststat import read_busy_seconds
from procpilot.core.procfs.vmstat import read_oom_kills


class SpawnFailed(Exception):
    """The program could not be started at all; str() says why (no such file, bad user...)."""


@dataclass(frozen=True)
class Usage:
    """One instance's process tree at one measurement."""

    rss_bytes: int
    cpu_user: float  # seconds used since the instance's process started, its tree included
    cpu_system: float


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


class Runtime(Protocol):
    loop: asyncio.AbstractEventLoop
    logs: LogFiles  # instance log files, shared by the processes of one slot

    def wall(self) -> float:
        """Unix time, for what status and metrics report."""

    def rand(self) -> float:
        """Uniform in [0, 1), for backoff jitter."""

    def start(self, spec: SpawnSpec, sink: Sink) -> Child:
        """Start spec with its output going to sink; SpawnFailed when it cannot start."""

    async def healthy(self, check: Health, spec: SpawnSpec) -> bool:
        """Run one health check (an exec check runs like the program itself)."""

    def measure(self, children: Sequence[Child]) -> dict[int, Usage]:
        """Usage of each child's tree, by pid; a child that is gone is absent."""

    def host_busy_seconds(self) -> float | None:
        """CPU seconds the whole host was busy since boot (for ``metric: system`` pools)."""


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


class ProcessChild:
    """A real instance process: its process group, its exit through the reaper."""

    def __init__(self, rt: ProcessRuntime, pid: int, exited: asyncio.Future[ExitStatus]) -> None:
        self._rt = rt
        self._pid = pid
        self._exited = exited
        self._oom_kills_at_start = read_oom_kills(rt.fs)
        self.cpu_user = 0.0  # accumulated by ProcessRuntime.measure
        self.cpu_system = 0.0

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def exited(self) -> asyncio.Future[ExitStatus]:
        return self._exited

    def signal(self, sig: int) -> bool:
        return signal_group(self._pid, sig)

    def kill(self) -> None:
        signal_group(self._pid, signal.SIGKILL)

    def finish(self, deadline: float) -> asyncio.Future[None] | None:
        """Wait for the rest of the group until deadline, then SIGKILL it.

        The group's last member is always reaped by the controller (members left behind
        are re-parented to it), so checking after each orphan reap sees it empty.
        """
        pgid = self._pid
        if not signal_group(pgid, 0):
            return None
        rt = self._rt
        done: asyncio.Future[None] = rt.loop.create_future()
        timer = rt.loop.call_later(max(deadline - rt.loop.time(), 0.0),
                                   signal_group, pgid, signal.SIGKILL)

        def check() -> None:
            if not signal_group(pgid, 0):
                timer.cancel()
                rt.reaper.orphan_listeners.discard(check)
                rt.draining.discard(done)
                done.set_result(None)

        rt.reaper.orphan_listeners.add(check)
        rt.draining.add(done)
        return done

    def oom_killed(self) -> bool:
        """Guessed from the host's OOM kill counter: it rose while this process ran.

        Host-wide, so an OOM kill elsewhere at the same time is mistaken for this one.
        """
        before, now = self._oom_kills_at_start, read_oom_kills(self._rt.fs)
        return before is not None and now is not None and now > before


class ProcessRuntime:
    """The real runtime: processes in their own groups, the reaper, procfs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fs: FS) -> None:
        self.loop = loop
        self.fs = fs
        self.reaper = Reaper(loop)
        self.logs = LogFiles()
        self.readers: set[PipeReader] = set()  # output pipes still open (leftovers included)
        self.draining: set[asyncio.Future[None]] = set()  # groups finishing after a stop
        self._cpu: CpuTracker[tuple[int, int]] = CpuTracker()
        self._walk_subtree = has_children_files(fs)
        self._procfs = ProcReader(fs)

    def install(self) -> None:
        self.reaper.install()

    def close(self) -> None:
        self.reaper.uninstall()
        self.logs.close_all()

    @property
    def reaped_orphans(self) -> int:
        return self.reaper.reaped_unmanaged

    def wall(self) -> float:
        return time.time()

    def rand(self) -> float:
        return random.random()

    def start(self, spec: SpawnSpec, sink: Sink) -> ProcessChild:
        try:
            child = spawn(spec, self.reaper)
        except (OSError, KeyError, ValueError, subprocess.SubprocessError) as e:
            raise SpawnFailed(str(e)) from e
        if child.output_fd is not None:
            reader = PipeReader(self.loop, child.output_fd, sink)
            self.readers.add(reader)
            reader.done.add_done_callback(lambda _: self.readers.discard(reader))
        return ProcessChild(self, child.pid, child.exited)

    async def healthy(self, check: Health, spec: SpawnSpec) -> bool:
        return await health.check_once(check, self.reaper, spec)

    def measure(self, children: Sequence[Child]) -> dict[int, Usage]:
        """One procfs pass: the controller's subtree, or all of /proc without children files."""
        if not children:
            return {}
        procs = (subtree(self.fs, os.getpid()) if self._walk_subtree
                 else self._procfs.snapshot().procs)
        members = tree_members(procs, [c.pid for c in children])
        usage = {}
        for child in children:
            assert isinstance(child, ProcessChild)
            tree = members.get(child.pid, [])
            for p in tree:
                used = self._cpu.observe(p.key, p.utime, p.stime)
                child.cpu_user += used.user
                child.cpu_system += used.system
            if tree:
                usage[child.pid] = Usage(sum(p.rss_bytes for p in tree),
                                         child.cpu_user, child.cpu_system)
        self._cpu.sweep()
        return usage

    def host_busy_seconds(self) -> float | None:
        return read_busy_seconds(self.fs)

    async def wind_down(self, drain_bound: float, output_bound: float) -> None:
        """At shutdown: wait for stopped groups to finish and for their last output."""
        if self.draining:
            await asyncio.wait(list(self.draining), timeout=drain_bound)
        if self.readers:
            await asyncio.wait([r.done for r in self.readers], timeout=output_bound)
        for reader in list(self.readers):
            reader.close()
