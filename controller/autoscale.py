"""The autoscaling decision for a worker pool: a pure function, modelled on the Kubernetes HPA.

Each interval the runtime measures the CPU of every running worker (or of the host, for
``metric: system``) and calls :func:`decide`. The function reads no clock and keeps no hidden
state: the time comes in as ``now`` and the memory between calls (recent recommendations for
the scale-down stabilization window, recent changes for the scale-up rate limit) is an
immutable :class:`ScaleState` passed in and handed back in the :class:`Decision`.

The steps follow the HPA (kubernetes.io "Horizontal Pod Autoscaling", algorithm details and
configurable scaling behavior), in this order:

1. utilization = mean CPU of the warmed-up workers / ``cpu_target_cores``;
2. no change while utilization is within ``1 +/- tolerance``;
3. warm-up workers are left out of that mean; when the mean with them put back points the
   other way (or into the tolerance), do nothing;
4. recommendation = ceil(utilization x running workers); instances that are not running
   (crashed, restarting) count as exactly on target when scaling down, so a crash loop
   cannot shrink the pool; if counting them turns the change around, do nothing;
5. scale-down goes only to the highest recommendation of the stabilization window;
6. scale-up adds at most max(``scale_up_max_step``, 100 %) of the count at the start of
   the rate-limit period;
7. the result is clamped to ``[min_workers, max_workers]``.

Where this differs from the HPA, and why: the HPA leaves not-ready pods out of the count
(at 0 % on a scale-up, dropped on a scale-down). Work in a pool is shared, so a worker in
warm-up already takes its share: the warmed-up mean is multiplied by every running worker,
and the warm-up workers' own CPU serves only to confirm the direction. That reaches the
needed count one interval sooner after a step up and never stops a just-started worker
because the older ones got quieter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Literal

CpuSource = Literal["pool", "system"]

ScaleReason = Literal[
    "scale_up",  # the pool grows to the recommendation
    "scale_down",  # the pool shrinks to the recommendation
    "within_tolerance",  # utilization within 1 +/- tolerance
    "warmup_reversal",  # warm-up workers' CPU does not confirm the direction
    "missing_reversal",  # counting not-running instances turns the change around
    "rounding",  # the rounded-up recommendation equals the current count
    "no_ready_workers",  # no warmed-up worker to measure: hold
    "stabilized",  # scale-down held up by a higher recommendation in the window
    "rate_limited",  # scale-up capped by the per-period step
    "clamped_min",  # raised to min_workers
    "clamped_max",  # lowered to max_workers
]

# Float division turns 4 into 4.000000001 and a ratio of 1.1 into 1.1000000000000001; such
# noise must neither round a recommendation up nor push a ratio over the tolerance boundary.
_FLOAT_SLACK = 1e-9


@dataclass(frozen=True)
class Policy:
    """One pool's autoscale settings; the defaults are the Kubernetes HPA's."""

    min_workers: int
    max_workers: int
    cpu_target_cores: float
    tolerance: float = 0.1
    interval_seconds: float = 15.0
    warmup_seconds: float | None = None  # None: one interval (the first full interval)
    metric: CpuSource = "pool"
    scale_up_max_step: int = 4
    scale_up_period_seconds: float = 15.0
    scale_down_stabilization_seconds: float = 300.0

    def __post_init__(self) -> None:
        problems = [
            text
            for bad, text in (
                (self.min_workers < 1, "min_workers must be at least 1"),
                (self.max_workers < self.min_workers, "max_workers must be >= min_workers"),
                (not self.cpu_target_cores > 0, "cpu_target_cores must be > 0"),
                (not 0 <= self.tolerance < 1, "tolerance must be in [0, 1)"),
                (not self.interval_seconds > 0, "interval_seconds must be > 0"),
                (self.warmup_seconds is not None and self.warmup_seconds < 0,
                 "warmup_seconds must be >= 0"),
                (self.metric not in ("pool", "system"), "metric must be 'pool' or 'system'"),
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


@dataclass(frozen=True)
class WorkerSample:
    """One running worker over the last interval."""

    cpu_cores: float  # CPU of its whole process tree over the interval, in cores
    warmed_up: bool  # see past_warmup()


@dataclass(frozen=True)
class HostSample:
    """The host's CPU over the last interval, for ``metric: system``."""

    cpu_cores: float  # busy CPU of the whole host over the interval, in cores


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
class Decision:
    """The outcome of one interval; the runtime sets the count to ``desired``."""

    current: int
    desired: int
    recommendation: int | None  # before stabilization, rate limit and clamping
    utilization: float | None  # measured CPU per worker / target; None without a measurement
    at_max: bool  # the recommendation is above max_workers
    reason: ScaleReason
    state: ScaleState = field(repr=False)

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


@dataclass(frozen=True)
class _Estimate:
    utilization: float | None
    recommendation: int | None  # None: nothing to act on
    reason: ScaleReason


def past_warmup(started_at: float, sample_start: float, policy: Policy) -> bool:
    """Whether a worker's sample counts: the sampled interval began after its warm-up ended.

    With the default warm-up of one interval this leaves out the interval in which the
    worker started and the first full interval after it.
    """
    return sample_start >= started_at + policy.warmup


def decide(
    policy: Policy,
    current: int,
    measurement: Sequence[WorkerSample] | HostSample,
    state: ScaleState,
    now: float,
) -> Decision:
    """Decide the instance count for the next interval.

    ``current`` is the supervised count (running, starting and restarting instances);
    ``measurement`` is one sample per running worker for ``metric: pool``, or the host
    sample for ``metric: system``.
    """
    state = state.pruned(policy, now)
    estimate = _estimate(policy, current, measurement)
    recommendation = estimate.recommendation
    reason: ScaleReason
    at_max = recommendation is not None and recommendation > policy.max_workers

    if current < policy.min_workers:
        # Like the HPA: an out-of-range count is corrected at once, without rate limits.
        desired, reason = policy.min_workers, "clamped_min"
    elif current > policy.max_workers:
        desired, reason = policy.max_workers, "clamped_max"
    elif recommendation is None:
        desired, reason = current, estimate.reason
    else:
        state = ScaleState((*state.recommendations, (now, recommendation)), state.changes)
        desired, reason = _limit(policy, current, recommendation, estimate.reason, state)

    if desired != current:
        state = ScaleState(state.recommendations, (*state.changes, (now, desired - current)))
    return Decision(current, desired, recommendation, estimate.utilization, at_max, reason, state)


def _estimate(
    policy: Policy, current: int, measurement: Sequence[WorkerSample] | HostSample
) -> _Estimate:
    if isinstance(measurement, HostSample) != (policy.metric == "system"):
        raise TypeError(f"metric {policy.metric!r} does not take {type(measurement).__name__}")
    if isinstance(measurement, HostSample):
        if current < 1:
            return _Estimate(None, None, "no_ready_workers")
        # All of the host's CPU is charged to the pool: `metric: system` is for hosts
        # that run little else, where the pool is what keeps them busy.
        utilization = measurement.cpu_cores / current / policy.cpu_target_cores
        return _recommend(policy, current, utilization, running=current, missing=0)

    ready = [s.cpu_cores for s in measurement if s.warmed_up]
    if not ready:
        return _Estimate(None, None, "no_ready_workers")
    utilization = fmean(ready) / policy.cpu_target_cores
    direction = _direction(utilization, policy.tolerance)
    if direction and len(ready) < len(measurement):
        with_warmup = fmean(s.cpu_cores for s in measurement) / policy.cpu_target_cores
        if _direction(with_warmup, policy.tolerance) != direction:
            return _Estimate(utilization, current, "warmup_reversal")
    missing = max(0, current - len(measurement))
    return _recommend(policy, current, utilization, running=len(measurement), missing=missing)


def _recommend(
    policy: Policy, current: int, utilization: float, running: int, missing: int
) -> _Estimate:
    """ceil(utilization x running workers), with not-running instances on target when shrinking.

    Work in a pool is shared, so the warmed-up workers' mean stands for every running
    worker, warm-up ones included; the instances that are not running have handed their
    share to the others.
    """
    direction = _direction(utilization, policy.tolerance)
    if direction == 0:
        return _Estimate(utilization, current, "within_tolerance")
    counted = missing if direction < 0 else 0
    needed = utilization * running + counted
    recommendation = math.ceil(needed - _FLOAT_SLACK)
    # Like the HPA: with the missing instances counted, the ratio must still point the same
    # way beyond the tolerance, and so must the count.
    if missing and _direction(needed / (running + counted), policy.tolerance) != direction:
        return _Estimate(utilization, current, "missing_reversal")
    if (recommendation - current) * direction <= 0:
        return _Estimate(utilization, current, "missing_reversal" if missing else "rounding")
    return _Estimate(utilization, recommendation, "scale_up" if direction > 0 else "scale_down")


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
