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
        PoolStatus,
        ProgramStatus,
        Status,
    )


@dataclass(frozen=True)
class LastExit:
    status: ExitStatus
    reason: str  # a restart reason, or "stopped" when asked to stop
    time: float  # unix seconds


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
                "time": last.time},
        }


@dataclass(frozen=True)
class PoolView:
    min: int
    max: int
    pinned: int | None
    utilization: float | None  # last measured CPU per worker / target; None before the first
    desired: int
    # Metrics only (not in ``status``):
    cpu_target_cores: float
    at_max: bool  # the last decision's recommendation was above max
    scale_events: dict[str, int]  # by direction (up, down), monotonic
    last_scale_time: float | None  # unix seconds of the last scale event

    def status(self) -> PoolStatus:
        return {"min": self.min, "max": self.max, "pinned": self.pinned,
                "utilization": self.utilization, "desired": self.desired}


@dataclass(frozen=True)
class ProgramView:
    program: str
    state: str
    desired: int
    pool: PoolView | None
    instances: tuple[InstanceView, ...]
    restarts: dict[str, int] = field(default_factory=dict)  # by reason, monotonic
    exit_code: int | None = None  # last exit, signal n as 128 + n
    memory_limit: int | None = None
    cpu_user: float = 0.0
    cpu_system: float = 0.0

    def status(self) -> ProgramStatus:
        return {
            "program": self.program,
            "state": self.state,
            "desired": self.desired,
            "pool": self.pool.status() if self.pool else None,
            "instances": [i.status() for i in self.instances],
        }

    @property
    def running(self) -> list[InstanceView]:
        return [i for i in self.instances if i.state == "running"]


@dataclass(frozen=True)
class ControllerView:
    programs: tuple[ProgramView, ...]
    reaped_processes: int
    reloads: dict[str, int]  # by result: success, failure
    last_reload_ok: bool = True
    last_reload_success: float = 0.0  # unix time the config was last loaded successfully

    def status(self) -> Status:
        return {"programs": [p.status() for p in self.programs]}
