"""The autoscaler of one pool: read its targets on a loop timer, call the pure
``autoscale.decide``, apply, and keep the books that status, ``explain`` and the pool
metrics read.

Per-worker CPU and memory over the interval come from the measurements of each instance's
current process (:class:`~procpilot.controller.instance.Run`, stamped with the time of the
pass that read them); a ``system`` target asks the runtime for the host's busy time; work
from outside the pool (Prometheus, HTTP, a command) is read through the runtime, each with
its timeout, all at once. A reading that fails is logged once when it starts failing and
once when it recovers, and counted. While ``procpilotctl scale PROGRAM N`` pins the count,
ticks measure but change nothing (and the pool is not "at max": the operator, not the
recommendation, sets the size); ``scale PROGRAM auto`` hands the pool back. Each scale
event is one log line with program, from, to, utilization, reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from procpilot.controller.autoscale import (
    Decision,
    HostSample,
    Policy,
    Reading,
    ScaleState,
    WorkerSample,
    decide,
    past_warmup,
)
from procpilot.controller.autoscaleconfig import Autoscale
from procpilot.controller.instance import Run
from procpilot.controller.metricsources import MetricError, finite
from procpilot.controller.program import Program
from procpilot.controller.states import State
from procpilot.controller.view import PoolMetricView, PoolView
from procpilot.core.cpu import CpuTracker

if TYPE_CHECKING:
    from procpilot.controller.protocol import Explained

log = logging.getLogger("procpilot.autoscale")
HISTORY = 10  # decisions kept for procpilotctl explain


@dataclass(frozen=True)
class Remembered:
    """One decision and when it was taken, for procpilotctl explain."""

    time: float  # unix seconds
    decision: Decision


class PoolScaler:
    """Runs one pool's decisions on a loop timer until closed."""

    def __init__(self, program: Program, refresh: Callable[[], None]) -> None:
        assert program.config.autoscale is not None
        self.program = program
        self.refresh = refresh  # measure the workers the sampler does not poll
        self.settings: Autoscale = program.config.autoscale
        self.policy: Policy = self.settings.policy()
        self.state = ScaleState()
        self.pinned: int | None = None  # `procpilotctl scale N`
        # The books status, explain and metrics read:
        self.utilization: float | None = None  # of the CPU target, held through gaps
        self.at_max = False  # the last recommendation was above max
        self.scale_events: Counter[str] = Counter()  # by direction: up, down
        self.last_scale_time: float | None = None  # unix time of the last scale event
        self.values: dict[str, float | None] = {}  # each target's last value
        self.errors: Counter[str] = Counter()  # failed readings by target
        self.history: deque[Remembered] = deque(maxlen=HISTORY)
        # Per worker run, keyed by (index, start time): CPU since the previous tick.
        self._used: CpuTracker[tuple[int, float]] = CpuTracker(grace=0)
        self._host: tuple[float, float] | None = None
        self._failing: dict[str, str] = {}  # target -> why, while its reading fails
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = self.program.rt.loop
        self._timer = loop.call_later(self.policy.interval_seconds, self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def retarget(self, settings: Autoscale) -> None:
        """A changed autoscale section, applied to the running pool: its workers stay, the
        count is clamped to the new bounds (by the program), the windows are kept."""
        self.settings, self.policy = settings, settings.policy()
        self.values = {name: v for name, v in self.values.items()
                       if any(t.name == name for t in self.policy.targets)}

    def _tick(self) -> None:
        self._timer = None
        self._task = self.program.rt.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self._decide()
        except Exception:  # one failed tick must not stop the pool's scaling for good
            log.exception("autoscaler tick failed",
                          extra={"fields": {"program": self.program.name}})
        finally:
            self._task = None
            self.start()

    # --- readings ------------------------------------------------------------------------

    def _cpu(self) -> list[WorkerSample]:
        samples = []
        for index, run in self._running():
            at = run.sampled_at
            if at is None:
                continue
            used = self._used.observe((index, run.started), run.cpu_user, run.cpu_system, at)
            if used.seconds is not None and used.seconds > 0:
                warmed_up = past_warmup(run.started, at - used.seconds, self.policy)
                samples.append(WorkerSample(used.total / used.seconds, warmed_up))
        self._used.sweep()
        return samples

    def _memory(self) -> list[WorkerSample]:
        return [WorkerSample(float(run.rss_bytes), True) for _, run in self._running()
                if run.rss_bytes is not None]

    def _running(self) -> list[tuple[int, Run]]:
        """(index, current process) of the workers that count: running, not retiring."""
        return [(i.index, i.run) for i in self.program.instances.values()
                if i.state == State.RUNNING and not i.retire and i.run is not None]

    def _host_sample(self, now: float) -> HostSample | None:
        busy = self.program.rt.host_busy_seconds()
        last, self._host = self._host, (busy, now) if busy is not None else None
        if busy is None or last is None or now <= last[1]:
            return None
        return HostSample((busy - last[0]) / (now - last[1]))

    async def _total(self, name: str) -> float | None:
        metric = self.settings.totals()[name]
        try:
            value = finite(await self.program.rt.read_metric(metric))
            why = None if value is not None else "not a finite number"
        except MetricError as e:
            value, why = None, str(e)
        fields = {"program": self.program.name, "metric": name}
        if why is not None:
            self.errors[name] += 1
            if self._failing.get(name) is None:
                log.warning("cannot read a pool metric; not scaling down on it",
                            extra={"fields": {**fields, "err": why}})
            self._failing[name] = why
        elif self._failing.pop(name, None) is not None:
            log.info("pool metric readable again", extra={"fields": fields})
        return value

    async def _readings(self, now: float) -> dict[str, Reading]:
        readings: dict[str, Reading] = {}
        totals = [t.name for t in self.policy.targets if t.kind == "total"]
        values = await asyncio.gather(*(self._total(name) for name in totals))
        readings.update(zip(totals, values, strict=True))
        for target in self.policy.targets:
            if target.kind == "cpu":
                readings[target.name] = self._cpu()
            elif target.kind == "memory":
                readings[target.name] = self._memory()
            elif target.kind == "system":
                readings[target.name] = self._host_sample(now)
        return readings

    # --- deciding ------------------------------------------------------------------------

    async def _decide(self) -> None:
        program = self.program
        self.refresh()
        readings = await self._readings(program.rt.loop.time())
        if self.pinned is not None:  # measured all the same: the next decision covers one
            self.at_max = False  # interval; the operator decides, nothing is recommended
            return
        current = len([i for i in program.instances.values() if not i.retire])
        decision = decide(self.policy, current, readings, self.state, program.rt.loop.time())
        self.state = decision.state
        self.history.append(Remembered(program.rt.wall(), decision))
        for said in decision.targets:
            self.values[said.name] = said.value
        if decision.utilization is not None:  # hold the last one through gaps
            self.utilization = decision.utilization
        self.at_max = decision.at_max
        if decision.direction is not None:
            log.info("scaling pool", extra={"fields": decision.log_fields(program.name)})
            self.scale_events[decision.direction] += 1
            self.last_scale_time = program.rt.wall()
            program.scale(decision.desired)

    def explain(self) -> list[Explained]:
        """The last decisions, oldest first, for procpilotctl explain."""
        return [{"time": e.time, "current": e.decision.current,
                 "recommendation": e.decision.recommendation, "desired": e.decision.desired,
                 "reason": e.decision.reason,
                 "targets": [{"name": t.name, "value": t.value, "utilization": t.utilization,
                              "recommendation": t.recommendation, "reason": t.reason}
                             for t in e.decision.targets]}
                for e in self.history]

    def view(self) -> PoolView:
        cpu = next((t.per_worker for t in self.policy.targets if t.kind in ("cpu", "system")),
                   None)
        metrics = tuple(PoolMetricView(t.name, self.values.get(t.name), t.per_worker,
                                       self.errors[t.name]) for t in self.policy.targets)
        return PoolView(self.policy.min_workers, self.policy.max_workers, self.pinned,
                        self.utilization, self.program.desired, cpu_target_cores=cpu,
                        at_max=self.at_max, scale_events=dict(self.scale_events),
                        last_scale_time=self.last_scale_time, metrics=metrics)
