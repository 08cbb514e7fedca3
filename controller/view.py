"""Read-only copies of program state, taken on the loop thread for status and metrics.

Program objects are only touched by the event loop. The HTTP server runs in another thread,
so a scrape asks the loop for a :class:`ControllerView` (plain frozen data) and renders that;
``procpilotctl status`` renders the same view, so both always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from procpilot.controller.states import ExitStatus

if TYPE_CHECKING:
    from procpilot.controller.protocol import (
        InstanceStatus,
        LimitStatus,
        PoolStatus,
        ProgramStatus,
        Status,
    )
    from procpilot.core.reloads import Reloads


@dataclass(frozen=True)
class LastExit:
    status: ExitStatus
    reason: str  # a restart reason, or "stopped" when asked to stop
    time: float  # unix seconds
    error: str | None = None  # why it could not start at all (exit 127)


@dataclass(frozen=True)
class InstanceView:
    id: str
    state: str
    pid: int | None
    uptime_seconds: float | None
    restarts: int
    rss_bytes: int | None
    backoff_seconds: float
    last_exit: LastExit | None
    started_at: float | None  # unix seconds of the running process's start
    cgroup_memory_bytes: int | None = None  # its cgroup's charge, page cache included
    tasks: int | None = None  # processes and threads of the running process's tree
    ready: bool = False  # serving (see Instance.ready)
    status_text: str | None = None  # its last STATUS= (ready: notify)
    replacing: int | None = None  # pid of the process it replaces while it gets ready

    def status(self) -> InstanceStatus:
        last = self.last_exit
        return {
            "id": self.id,
            "state": self.state,
            "pid": self.pid,
            "uptime_seconds": self.uptime_seconds,
            "restarts": self.restarts,
            "rss_bytes": self.rss_bytes,
            "backoff_seconds": self.backoff_seconds,
            "last_exit": None if last is None else {
                "code": last.status.code, "signal": last.status.signal, "reason": last.reason,
                "time": last.time, "error": last.error},
            "ready": self.ready,
            "status_text": self.status_text,
            "replacing": self.replacing,
        }


@dataclass(frozen=True)
class PoolMetricView:
    """One target of a pool: its last value, what each worker should carry, failed reads."""

    name: str
    value: float | None
    per_worker: float
    errors: int


@dataclass(frozen=True)
class PoolView:
    min: int
    max: int
    pinned: int | None
    utilization: float | None  # last measured CPU per worker / target; None before the first
    desired: int
    # Metrics only (not in ``status``):
    cpu_target_cores: float | None  # None without a CPU target
    at_max: bool  # the last decision's recommendation was above max
    scale_events: dict[str, int]  # by direction (up, down), monotonic
    last_scale_time: float | None  # unix seconds of the last scale event
    metrics: tuple[PoolMetricView, ...] = ()

    def status(self) -> PoolStatus:
        return {"min": self.min, "max": self.max, "pinned": self.pinned,
                "utilization": self.utilization, "desired": self.desired}


@dataclass(frozen=True)
class LimitView:
    """One configured limit per instance and who keeps it: the kernel (a cgroup), the
    controller by measuring (polled), the process itself (rlimits, umask), or no one."""

    kind: str  # memory, memory_high, swap, cpu, tasks, nofile, core, umask
    value: int | float | str
    enforced: str  # kernel, polled, process, not enforced

    def status(self) -> LimitStatus:
        return {"kind": self.kind, "value": self.value, "enforced": self.enforced}


@dataclass(frozen=True)
class ProgramView:
    program: str
    state: str
    desired: int
    pool: PoolView | None
    instances: tuple[InstanceView, ...]
    restarts: dict[str, int] = field(default_factory=dict)  # by reason, monotonic
    exit_code: int | None = None  # last exit, signal n as 128 + n
    limits: tuple[LimitView, ...] = ()
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    cpu_throttled: float | None = None  # seconds, monotonic; None without a cpu cgroup
    waiting_for: tuple[str, ...] = ()  # dependencies its start waits on

    def limit(self, kind: str) -> int | float | str | None:
        return next((lim.value for lim in self.limits if lim.kind == kind), None)

    def status(self) -> ProgramStatus:
        return {
            "program": self.program,
            "state": self.state,
            "desired": self.desired,
            "pool": self.pool.status() if self.pool else None,
            "instances": [i.status() for i in self.instances],
            "limits": [lim.status() for lim in self.limits],
            "waiting_for": list(self.waiting_for),
        }

    @property
    def running(self) -> list[InstanceView]:
        return [i for i in self.instances if i.state == "running"]


@dataclass(frozen=True)
class ControllerView:
    programs: tuple[ProgramView, ...]
    reaped_processes: int
    reloads: Reloads
    isolation: str = "none"  # the backend: cgroup2, cgroup1, none
    leftovers_killed: int = 0  # processes an earlier controller left, killed at start-up
    hook_runs: dict[str, int] = field(default_factory=dict)  # by kind: command, webhook
    hook_failures: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, reason)
    notifications_rejected: int = 0  # notify datagrams from no instance of ours

    def status(self) -> Status:
        return {"programs": [p.status() for p in self.programs]}
