"""The autoscaler of one pool: measure on a loop timer, call the pure ``autoscale.decide``,
apply, and keep the books that status and the pool metrics read.

Per-worker CPU over the interval comes from the sampler's measurements of each instance's
current process (:class:`~procpilot.controller.instance.Run`, stamped with the time of the
pass that read it), so a tick reads nothing itself; ``metric: system`` asks the runtime for
the host's busy time. While ``procpilotctl scale PROGRAM N`` pins the count, ticks measure
but change nothing (and the pool is not "at max": the operator, not the
recommendation, sets the size); ``scale PROGRAM auto`` hands the pool back. Each scale event
is one log line with program, from, to, utilization, reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from procpilot.controller.autoscale import HostSample, ScaleState, WorkerSample, decide, past_warmup
from procpilot.controller.program import Program
from procpilot.controller.states import State
from procpilot.controller.view import PoolView
from procpilot.core.cpu import CpuTracker

log = logging.getLogger("procpilot.autoscale")


class PoolScaler:
    """Runs one pool's decisions on a loop timer until closed."""

    def __init__(self, program: Program, refresh: Callable[[], None]) -> None:
        assert program.config.autoscale is not None
        self.program = program
        self.refresh = refresh  # measure the workers the sampler does not poll
        self.policy = program.config.autoscale.policy()
        self.state = ScaleState()
        self.pinned: int | None = None  # `procpilotctl scale N`
        # The books status and metrics read:
        self.utilization: float | None = None  # last measurement, held through gaps
        self.at_max = False  # the last recommendation was above max
        self.scale_events: Counter[str] = Counter()  # by direction: up, down
        self.last_scale_time: float | None = None  # unix time of the last scale event
        # Per worker run, keyed by (index, start time): CPU since the previous tick.
        self._used: CpuTracker[tuple[int, float]] = CpuTracker(grace=0)
        self._host: tuple[float, float] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._timer = self.program.rt.loop.call_later(self.policy.interval_seconds, self.tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _workers(self) -> list[WorkerSample]:
        samples = []
        for inst in self.program.instances.values():
            run = inst.run
            if inst.state != State.RUNNING or inst.retire or run is None:
                continue
            at = run.sampled_at
            if at is None:
                continue
            used = self._used.observe((inst.index, run.started), run.cpu_user, run.cpu_system, at)
            if used.seconds is not None and used.seconds > 0:
                warmed_up = past_warmup(run.started, at - used.seconds, self.policy)
                samples.append(WorkerSample(used.total / used.seconds, warmed_up))
        self._used.sweep()
        return samples

    def _host_sample(self, now: float) -> HostSample | None:
        busy = self.program.rt.host_busy_seconds()
        last, self._host = self._host, (busy, now) if busy is not None else None
        if busy is None or last is None or now <= last[1]:
            return None
        return HostSample((busy - last[0]) / (now - last[1]))

    def tick(self) -> None:
        self._timer = None
        try:
            self._decide()
        except Exception:  # one failed tick must not stop the pool's scaling for good
            log.exception("autoscaler tick failed",
                          extra={"fields": {"program": self.program.name}})
        finally:
            self.start()

    def _decide(self) -> None:
        program = self.program
        self.refresh()
        now = program.rt.loop.time()
        # Measured while pinned too, so that the first decision after `scale auto` covers
        # one interval, not the whole pinned time.
        measurement: list[WorkerSample] | HostSample | None = (
            self._host_sample(now) if self.policy.metric == "system" else self._workers()
        )
        if self.pinned is not None:
            self.at_max = False  # the operator decides: nothing is recommended
            return
        if measurement is None:
            return
        current = len([i for i in program.instances.values() if not i.retire])
        decision = decide(self.policy, current, measurement, self.state, now)
        self.state = decision.state
        if decision.utilization is not None:  # hold the last one through gaps
            self.utilization = decision.utilization
        self.at_max = decision.at_max
        if decision.direction is not None:
            log.info("scaling pool", extra={"fields": decision.log_fields(program.name)})
            self.scale_events[decision.direction] += 1
            self.last_scale_time = program.rt.wall()
            program.scale(decision.desired)

    def view(self) -> PoolView:
        return PoolView(self.policy.min_workers, self.policy.max_workers, self.pinned,
                        self.utilization, self.program.desired,
                        cpu_target_cores=self.policy.cpu_target_cores, at_max=self.at_max,
                        scale_events=dict(self.scale_events),
                        last_scale_time=self.last_scale_time)
