"""The autoscaling decision for a worker pool: a pure function, modelled on the Kubernetes HPA.

Each interval the runtime reads every target of the pool (each running worker's CPU or
memory, the host's CPU, or a total amount of work such as a queue's backlog) and calls
:func:`decide`. The function reads no clock and keeps no hidden state: the time comes in as
``now`` and the memory between calls (recent recommendations for the scale-down
stabilization window, recent changes for the scale-up rate limit) is an immutable
:class:`ScaleState` passed in and handed back in the :class:`Decision`.

The steps follow the HPA (kubernetes.io "Horizontal Pod Autoscaling", algorithm details and
configurable scaling behavior), in this order:

1. per worker (cpu, memory): utilization = mean of the warmed-up workers / target per
   worker; for a total: utilization = total / (target per worker x current);
2. no change while utilization is within ``1 +/- tolerance``;
3. warm-up workers are left out of that mean; when the mean with them put back points the
   other way (or into the tolerance), do nothing;
4. recommendation = ceil(utilization x running workers), or ceil(total / target per
   worker); instances that are not running (crashed, restarting) count as exactly on target
   when scaling down, so a crash loop cannot shrink the pool; if counting them turns the
   change around, do nothing;
5. the pool's recommendation is the highest of its targets'; while one cannot be read (and
   has no fallback) it does not shrink;
6. scale-down goes only to the highest recommendation of the stabilization window;
7. scale-up adds at most max(``scale_up_max_step``, 100 %) of the count at the start of
   the rate-limit period;
8. the result is clamped to ``[min_workers, max_workers]``.

Scaling to zero is the same function: a total at or below its activation threshold asks for
zero workers (which the stabilization window delays like any scale-down), and above it asks
for at least one, so an empty pool comes back at the first interval with work. Only totals
can do this: CPU and memory need a worker to measure.

Where this differs from the HPA, and why: the HPA leaves not-ready pods out of the count
(at 0 % on a scale-up, dropped on a scale-down). Work in a pool is shared, so a worker in
warm-up already takes its share: the warmed-up mean is multiplied by every running worker,
and the warm-up workers' own CPU serves only to confirm the direction. That reaches the
needed count one interval sooner after a step up and never stops a just-started worker
because the older ones got quieter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Literal

Kind = Literal["cpu", "system", "memory", "total"]
"""What a target measures: each worker's CPU or memory, the host's CPU charged to the pool,
or a total amount of work (a backlog) from outside the pool."""

ScaleReason = Literal[
    "scale_up",  # the pool grows to the recommendation
    "scale_down",  # the pool shrinks to the recommendation
    "within_tolerance",  # utilization within 1 +/- tolerance
    "warmup_reversal",  # warm-up workers' CPU does not confirm the direction
    "missing_reversal",  # counting not-running instances turns the change around
    "rounding",  # the rounded-up recommendation equals the current count
    "no_ready_workers",  # no warmed-up worker to measure: hold
    "no_reading",  # a metric could not be read (and has no fallback): never scale down
    "fallback",  # a metric could not be read: its fallback count stands in
    "inactive",  # no work at or below the activation threshold: towards zero
    "activated",  # work above the activation threshold for an empty pool: start one
    "stabilized",  # scale-down held up by a higher recommendation in the window
    "rate_limited",  # scale-up capped by the per-period step
    "clamped_min",  # raised to min_workers
    "clamped_max",  # lowered to max_workers
]

# Float division turns 4 into 4.000000001 and a ratio of 1.1 into 1.1000000000000001; such
# noise must neither round a recommendation up nor push a ratio over the tolerance boundary.
_FLOAT_SLACK = 1e-9


@dataclass(frozen=True)
class Target:
    """One metric a pool scales on, and what each worker should carry of it."""

    name: str  # the metric label: cpu, memory, or the name given in the config
    kind: Kind
    per_worker: float  # cores (cpu, system), bytes (memory), units of work (total)
    activation: float = 0.0  # total: the pool has work while the value is above this
    fallback: int | None = None  # a count to stand in while the metric cannot be read


@dataclass(frozen=True)
class Policy:
    """One pool's autoscale settings; the defaults are the Kubernetes HPA's."""

    min_workers: int
    max_workers: int
    targets: tuple[Target, ...]
    tolerance: float = 0.1
    interval_seconds: float = 15.0
    warmup_seconds: float | None = None  # None: one interval (the first full interval)
    scale_up_max_step: int = 4
    scale_up_period_seconds: float = 15.0
    scale_down_stabilization_seconds: float = 300.0

    def __post_init__(self) -> None:
        names = [t.name for t in self.targets]
        problems = [
            text
            for bad, text in (
                (self.min_workers < 0, "min_workers must be at least 0"),
                (self.min_workers == 0 and not self.scales_to_zero,
                 "min_workers 0 needs a total target (CPU and memory need a worker to measure)"),
                (self.max_workers < max(self.min_workers, 1), "max_workers must be >= min_workers"),
                (not self.targets, "at least one target"),
                (len(set(names)) != len(names), "target names must differ"),
                (any(not t.per_worker > 0 for t in self.targets), "per_worker must be > 0"),
                (not 0 <= self.tolerance < 1, "tolerance must be in [0, 1)"),
                (not self.interval_seconds > 0, "interval_seconds must be > 0"),
                (self.warmup_seconds is not None and self.warmup_seconds < 0,
                 "warmup_seconds must be >= 0"),
                (self.scale_up_max_step < 1, "scale_up_max_step must be at least 1"),
                (not self.scale_up_period_seconds > 0, "scale_up_period_seconds must be > 0"),
                (self.scale_down_stabilization_seconds < 0,
                 "scale_down_stabilization_seconds must be >= 0"),
            )
            if bad
        ]
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def warmup(self) -> float:
        """Seconds after start during which a worker's CPU is not trusted."""
        return self.interval_seconds if self.warmup_seconds is None else self.warmup_seconds

    @property
    def scales_to_zero(self) -> bool:
        """Only work measured outside the workers can bring an empty pool back."""
        return any(t.kind == "total" for t in self.targets)


@dataclass(frozen=True)
class WorkerSample:
    """One running worker over the last interval."""

    value: float  # its CPU in cores, or its memory in bytes
    warmed_up: bool  # see past_warmup(); memory is always trusted


@dataclass(frozen=True)
class HostSample:
    """The host's CPU over the last interval, for a ``system`` target."""

    cpu_cores: float  # busy CPU of the whole host over the interval, in cores


Reading = Sequence[WorkerSample] | HostSample | float | None
"""What one target measured: per-worker samples (cpu, memory), the host (system), a total
(float; NaN or None when it could not be read)."""


@dataclass(frozen=True)
class ScaleState:
    """What a decision remembers for the next one; start with ``ScaleState()``."""

    # (time, unstabilized recommendation) inside the scale-down stabilization window
    recommendations: tuple[tuple[float, int], ...] = ()
    # (time, signed change of the count) inside the scale-up rate-limit period
    changes: tuple[tuple[float, int], ...] = ()

    def pruned(self, policy: Policy, now: float) -> ScaleState:
        """Drop what has left its window (entries exactly one window old are out, as in the HPA)."""
        since_down = now - policy.scale_down_stabilization_seconds
        since_up = now - policy.scale_up_period_seconds
        return ScaleState(
            tuple(entry for entry in self.recommendations if entry[0] > since_down),
            tuple(entry for entry in self.changes if entry[0] > since_up),
        )


@dataclass(frozen=True)
class TargetDecision:
    """What one target said: its value, the count it asks for and why."""

    name: str
    value: float | None  # mean per worker (cpu, memory), host cores (system), the total
    utilization: float | None  # value over its target (per worker)
    recommendation: int | None  # None: it has nothing to go on
    reason: ScaleReason


@dataclass(frozen=True)
class Decision:
    """The outcome of one interval; the runtime sets the count to ``desired``."""

    current: int
    desired: int
    recommendation: int | None  # the highest of the targets', before stabilization and limits
    utilization: float | None  # of the CPU target (cpu or system), None without one
    at_max: bool  # the recommendation is above max_workers
    reason: ScaleReason
    state: ScaleState = field(repr=False)
    targets: tuple[TargetDecision, ...] = ()

    @property
    def direction(self) -> Literal["up", "down"] | None:
        if self.desired == self.current:
            return None
        return "up" if self.desired > self.current else "down"

    def log_fields(self, program: str) -> dict[str, object]:
        """The structured fields of the one log line written per scale event."""
        return {
            "program": program,
            "from": self.current,
            "to": self.desired,
            "utilization": None if self.utilization is None else round(self.utilization, 3),
            "reason": self.reason,
        }


def past_warmup(started_at: float, sample_start: float, policy: Policy) -> bool:
    """Whether a worker's sample counts: the sampled interval began after its warm-up ended.

    With the default warm-up of one interval this leaves out the interval in which the
    worker started and the first full interval after it.
    """
    return sample_start >= started_at + policy.warmup


def decide(
    policy: Policy,
    current: int,
    readings: Mapping[str, Reading],
    state: ScaleState,
    now: float,
) -> Decision:
    """Decide the instance count for the next interval.

    ``current`` is the supervised count (running, starting and restarting instances);
    ``readings`` has one reading per target name (see ``Reading``). The recommendation is
    the highest any target asks for, as the HPA does with several metrics; while a target
    has nothing to go on, the pool does not shrink.
    """
    state = state.pruned(policy, now)
    said = tuple(_target(policy, t, current, readings.get(t.name)) for t in policy.targets)
    known = [d for d in said if d.recommendation is not None]
    top = max(known, key=lambda d: d.recommendation or 0, default=None)
    recommendation = top.recommendation if top is not None else None
    if recommendation is not None and len(known) < len(said) and recommendation < current:
        blind = next(d for d in said if d.recommendation is None)
        top, recommendation = blind, None  # one target cannot see: never scale down
    cpu = next((d.utilization for d in said if _is_cpu(policy, d.name)), None)
    reason: ScaleReason
    at_max = recommendation is not None and recommendation > policy.max_workers

    if current < policy.min_workers:
        # Like the HPA: an out-of-range count is corrected at once, without rate limits.
        desired, reason = policy.min_workers, "clamped_min"
    elif current > policy.max_workers:
        desired, reason = policy.max_workers, "clamped_max"
    elif recommendation is None or top is None:
        desired = current
        reason = top.reason if top is not None else said[0].reason
    else:
        state = ScaleState((*state.recommendations, (now, recommendation)), state.changes)
        desired, reason = _limit(policy, current, recommendation, top.reason, state)

    if desired != current:
        state = ScaleState(state.recommendations, (*state.changes, (now, desired - current)))
    return Decision(current, desired, recommendation, cpu, at_max, reason, state, said)


def _is_cpu(policy: Policy, name: str) -> bool:
    return any(t.name == name and t.kind in ("cpu", "system") for t in policy.targets)


def _target(policy: Policy, target: Target, current: int, reading: Reading) -> TargetDecision:
    """What one target asks for, from its reading."""
    if target.kind == "total":
        value = reading if isinstance(reading, float | int) else None
        return _total(policy, target, current, value)
    if target.kind == "system":
        if not isinstance(reading, HostSample):
            raise TypeError(f"target {target.name!r} (system) takes a HostSample")
        if current < 1:
            return TargetDecision(target.name, reading.cpu_cores, None, None, "no_ready_workers")
        # All of the host's CPU is charged to the pool: `metric: system` is for hosts
        # that run little else, where the pool is what keeps them busy.
        utilization = reading.cpu_cores / current / target.per_worker
        estimate = _recommend(policy, current, utilization, running=current, missing=0)
        return TargetDecision(target.name, reading.cpu_cores, *estimate)
    if not isinstance(reading, Sequence) or isinstance(reading, str):
        raise TypeError(f"target {target.name!r} ({target.kind}) takes worker samples")
    return _per_worker(policy, target, current, reading)


def _total(policy: Policy, target: Target, current: int, value: float | None) -> TargetDecision:
    """A backlog shared by the pool: ceil(value / per_worker), zero while inactive."""
    name = target.name
    if value is None or math.isnan(value):
        if target.fallback is not None:
            return TargetDecision(name, None, None, target.fallback, "fallback")
        return TargetDecision(name, None, None, None, "no_reading")
    if value <= target.activation:
        return TargetDecision(name, value, 0.0, 0, "inactive")
    needed = max(1, math.ceil(value / target.per_worker - _FLOAT_SLACK))
    if current == 0:
        return TargetDecision(name, value, None, needed, "activated")
    utilization = value / (target.per_worker * current)
    direction = _direction(utilization, policy.tolerance)
    if direction == 0:
        return TargetDecision(name, value, utilization, current, "within_tolerance")
    if needed == current:
        return TargetDecision(name, value, utilization, current, "rounding")
    return TargetDecision(name, value, utilization, needed,
                          "scale_up" if needed > current else "scale_down")


def _per_worker(policy: Policy, target: Target, current: int,
                samples: Sequence[WorkerSample]) -> TargetDecision:
    """Mean per warmed-up worker over its target, times the workers (see module doc)."""
    ready = [s.value for s in samples if s.warmed_up]
    if not ready:
        return TargetDecision(target.name, None, None, None, "no_ready_workers")
    mean = fmean(ready)
    utilization = mean / target.per_worker
    direction = _direction(utilization, policy.tolerance)
    if direction and len(ready) < len(samples):
        with_warmup = fmean(s.value for s in samples) / target.per_worker
        if _direction(with_warmup, policy.tolerance) != direction:
            return TargetDecision(target.name, mean, utilization, current, "warmup_reversal")
    missing = max(0, current - len(samples))
    estimate = _recommend(policy, current, utilization, running=len(samples), missing=missing)
    return TargetDecision(target.name, mean, *estimate)


def _recommend(
    policy: Policy, current: int, utilization: float, running: int, missing: int
) -> tuple[float, int, ScaleReason]:
    """ceil(utilization x running workers), with not-running instances on target when shrinking.

    Work in a pool is shared, so the warmed-up workers' mean stands for every running
    worker, warm-up ones included; the instances that are not running have handed their
    share to the others. Returns (utilization, recommendation, reason).
    """
    direction = _direction(utilization, policy.tolerance)
    if direction == 0:
        return utilization, current, "within_tolerance"
    counted = missing if direction < 0 else 0
    needed = utilization * running + counted
    recommendation = math.ceil(needed - _FLOAT_SLACK)
    # Like the HPA: with the missing instances counted, the ratio must still point the same
    # way beyond the tolerance, and so must the count.
    if missing and _direction(needed / (running + counted), policy.tolerance) != direction:
        return utilization, current, "missing_reversal"
    if (recommendation - current) * direction <= 0:
        return utilization, current, "missing_reversal" if missing else "rounding"
    return utilization, recommendation, "scale_up" if direction > 0 else "scale_down"


def _direction(utilization: float, tolerance: float) -> int:
    if abs(utilization - 1.0) <= tolerance + _FLOAT_SLACK:
        return 0
    return 1 if utilization > 1.0 else -1


def _limit(
    policy: Policy,
    current: int,
    recommendation: int,
    reason: ScaleReason,
    state: ScaleState,
) -> tuple[int, ScaleReason]:
    """Stabilize a scale-down, rate-limit a scale-up, clamp to [min, max].

    ``state`` is already pruned to the windows and holds this recommendation.
    """
    if recommendation < current:
        held = min(current, max(r for _, r in state.recommendations))
        if held > recommendation:
            recommendation, reason = held, "stabilized"
        if recommendation < policy.min_workers:
            return policy.min_workers, "clamped_min"
        return recommendation, reason
    if recommendation > current:
        # The HPA's rate limit: the count at the start of the period, plus the larger of
        # the fixed step and 100 % of that count.
        start = current - sum(change for _, change in state.changes)
        limit = max(current, start + max(policy.scale_up_max_step, start))
        ceiling = min(limit, policy.max_workers)
        if recommendation > ceiling:
            return ceiling, "rate_limited" if limit < policy.max_workers else "clamped_max"
    return recommendation, reason
