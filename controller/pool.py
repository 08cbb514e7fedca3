"""The autoscaler tick of one pool: measure, call the pure ``autoscale.decide``, apply.

Per-worker CPU over the interval comes from the sampler's counters (``Instance.cpu``, kept
per process tree and stamped with the time of the procfs pass that read them), so a tick
reads no procfs itself; ``metric: system`` reads the host's busy time from /proc/stat.
While ``procpilotctl scale PROGRAM N`` pins the count, ticks measure nothing and change
nothing (and the pool is not "at max": the operator, not the recommendation, sets the size);
``scale PROGRAM auto`` hands the pool back. Each decision leaves its books on the Program
(utilization, at_max, scale events by direction, last scale time), which status and the
metrics read; each scale event is one log line with program, from, to, utilization, reason.
"""

from __future__ import annotations

import asyncio
import logging

from procpilot.controller.autoscale import HostSample, ScaleState, WorkerSample, decide, past_warmup
from procpilot.controller.program import Program
from procpilot.controller.states import State
from procpilot.core.cpu import CpuTracker
from procpilot.core.procfs.hoststat import read_busy_seconds

log = logging.getLogger("procpilot.autoscale")


class PoolScaler:
    """Runs one pool's decisions on a loop timer until closed."""

    def __init__(self, program: Program) -> None:
        assert program.config.autoscale is not None
        self.program = program
        self.policy = program.config.autoscale.policy()
        self.state = ScaleState()
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
            at = inst.cpu_sampled_at
            if inst.state != State.RUNNING or inst.retire or at is None:
                continue
            used = self._used.observe((inst.index, inst.started), inst.cpu.user,
                                      inst.cpu.system, at)
            if used.seconds is not None and used.seconds > 0:
                warmed_up = past_warmup(inst.started, at - used.seconds, self.policy)
                samples.append(WorkerSample(used.total / used.seconds, warmed_up))
        self._used.sweep()
        return samples

    def _host_sample(self, now: float) -> HostSample | None:
        busy = read_busy_seconds(self.program.rt.fs)
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
        if program.pinned is not None:
            program.at_max = False  # the operator decides: nothing is recommended
            return
        now = program.rt.clock()
        current = len([i for i in program.instances.values() if not i.retire])
        measurement: list[WorkerSample] | HostSample | None = (
            self._host_sample(now) if self.policy.metric == "system" else self._workers()
        )
        if measurement is None:
            return
        decision = decide(self.policy, current, measurement, self.state, now)
        self.state = decision.state
        if decision.utilization is not None:  # hold the last one through gaps
            program.utilization = decision.utilization
        program.at_max = decision.at_max
        if decision.direction is not None:
            log.info("scaling pool", extra={"fields": decision.log_fields(program.name)})
            program.scale_events[decision.direction] += 1
            program.last_scale_time = program.rt.wall()
            program.scale(decision.desired)
