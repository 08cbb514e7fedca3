"""The autoscale: section of a program's config: bounds, what to scale on, how fast.

The pure autoscaler (``autoscale``) takes these settings as a :class:`Policy` and the metrics
as :class:`Target` values; the metrics read from outside the pool (prometheus, http, command)
are also what ``metricsources`` reads.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from procpilot.controller.autoscale import Policy, Target
from procpilot.controller.configtypes import Argv, Bytes, Cores, HttpUrl, Seconds
from procpilot.controller.protocol import MAX_INSTANCES
from procpilot.core.configfile import Strict


class ScaleUp(Strict):
    max_step: int = Field(default=4, ge=1, description="Most instances added in one period.")
    period: Seconds = Field(default=15.0, gt=0, description="Period of the max_step limit.")


class ScaleDown(Strict):
    stabilization: Seconds = Field(
        default=300.0, description="Scale down only to the highest recommendation of this window."
    )


METRIC_NAME = r"^[a-z][a-z0-9_]*$"  # a label value of procpilot_pool_metric_*


class CpuMetric(Strict):
    """CPU per worker (source pool: its own process trees; system: the host's, all charged
    to the pool)."""

    type: Literal["cpu"]
    target: Cores = Field(gt=0, description="Cores per worker, or '50%' of one core.")
    source: Literal["pool", "system"] = Field(default="pool")

    def target_of(self) -> Target:
        return Target("cpu", "cpu" if self.source == "pool" else "system", self.target)


class MemoryMetric(Strict):
    """Resident memory per worker."""

    type: Literal["memory"]
    target: Bytes = Field(gt=0, description="Bytes per worker.")

    def target_of(self) -> Target:
        return Target("memory", "memory", float(self.target))


class BasicAuth(Strict):
    username: str = Field(min_length=1)
    password_file: str = Field(min_length=1, description="File holding the password.")


class TLS(Strict):
    ca_file: str | None = Field(default=None, description="CA bundle to verify the server.")
    insecure_skip_verify: bool = Field(default=False, description="Do not verify (not advised).")


class _Total(Strict):
    """A total amount of work from outside the pool, shared by its workers."""

    type: str
    name: str | None = Field(default=None, pattern=METRIC_NAME,
                             description="Label of procpilot_pool_metric_*; default: the type.")
    target: float = Field(gt=0, description="Work per worker: desired = ceil(value / target).")
    activation: float = Field(
        default=0.0, ge=0, description="Above this the pool has work: from 0 it starts one; at "
        "or below it, it goes to min (0 allowed) after the scale-down stabilization.")
    fallback: int | None = Field(
        default=None, ge=0, le=MAX_INSTANCES,
        description="Count to stand in while the value cannot be read; default: hold.")
    timeout: Seconds = Field(default=5.0, gt=0, description="A slower read fails.")

    def target_of(self) -> Target:
        name = self.name or self.type
        return Target(name, "total", self.target, self.activation, self.fallback)


class _HTTPSource(_Total):
    bearer_token_file: str | None = Field(default=None, description="Authorization: Bearer.")
    basic_auth: BasicAuth | None = None
    tls: TLS = TLS()

    @model_validator(mode="after")
    def _one_auth(self) -> _HTTPSource:
        if self.bearer_token_file is not None and self.basic_auth is not None:
            raise ValueError("bearer_token_file and basic_auth are mutually exclusive")
        return self


class PrometheusMetric(_HTTPSource):
    """A PromQL query whose result is one number (a scalar, or a vector of one sample)."""

    type: Literal["prometheus"]
    server: HttpUrl = Field(description="Prometheus URL, e.g. http://127.0.0.1:9090.")
    query: str = Field(min_length=1, description="PromQL returning one number: the backlog.")


class HTTPMetric(_HTTPSource):
    """A URL answering a JSON number, or an object holding one at a dotted path."""

    type: Literal["http"]
    url: HttpUrl = Field(description="URL answering JSON.")
    field: str | None = Field(default=None, pattern=r"^[^.]+(\.[^.]+)*$",
                              description="Dotted path to the number, e.g. queue.depth.")


class CommandMetric(_Total):
    """A command printing one number."""

    type: Literal["command"]
    command: Argv = Field(description="argv, or a string split with shell-style quoting.")


Metric = Annotated[
    CpuMetric | MemoryMetric | PrometheusMetric | HTTPMetric | CommandMetric,
    Field(discriminator="type"),
]
TotalMetric = PrometheusMetric | HTTPMetric | CommandMetric


class Autoscale(Strict):
    min: int = Field(default=1, ge=0, description="Fewest instances; 0 needs a metric of "
                     "work from outside the pool (prometheus, http, command).")
    max: int = Field(ge=1, le=MAX_INSTANCES, description="Most instances.")
    cpu_target: Cores | None = Field(
        default=None, gt=0,
        description="Shorthand for metrics: [{type: cpu, target: ...}]: cores per instance.")
    metrics: tuple[Metric, ...] = Field(
        default=(), description="What to scale on; the count is the highest any asks for.")
    interval: Seconds = Field(default=15.0, gt=0, description="Time between scaling decisions.")
    tolerance: float = Field(
        default=0.1, ge=0, lt=1, description="No change while usage/target is within 1 +- this."
    )
    warmup: Seconds | None = Field(
        default=None, description="New instances' CPU is ignored this long; default one interval."
    )
    metric: Literal["pool", "system"] = Field(
        default="pool", description="With cpu_target: CPU of the pool's process trees, or of "
        "the whole system.")
    scale_up: ScaleUp = ScaleUp()
    scale_down: ScaleDown = ScaleDown()

    @model_validator(mode="after")
    def _consistent(self) -> Autoscale:
        if self.min > self.max:
            raise ValueError(f"autoscale min ({self.min}) is greater than max ({self.max})")
        if self.cpu_target is None and not self.metrics:
            raise ValueError("autoscale needs cpu_target or metrics")
        if self.cpu_target is not None and any(m.type == "cpu" for m in self.metrics):
            raise ValueError("give the cpu target once: cpu_target or a cpu metric")
        names = [t.name for t in self.targets()]
        if len(set(names)) != len(names):
            raise ValueError(f"metric names must differ (name them): {', '.join(names)}")
        if self.min == 0 and not self.totals():
            raise ValueError("min 0 needs a prometheus, http or command metric: CPU and "
                             "memory cannot be measured without a worker")
        return self

    def targets(self) -> tuple[Target, ...]:
        shorthand = () if self.cpu_target is None else (
            CpuMetric(type="cpu", target=self.cpu_target, source=self.metric),)
        return tuple(m.target_of() for m in (*shorthand, *self.metrics))

    def totals(self) -> dict[str, TotalMetric]:
        """The metrics read from outside the pool, by target name."""
        return {m.target_of().name: m for m in self.metrics
                if isinstance(m, PrometheusMetric | HTTPMetric | CommandMetric)}

    def policy(self) -> Policy:
        """The settings as the pure autoscaler takes them (validation guarantees it accepts)."""
        return Policy(
            min_workers=self.min,
            max_workers=self.max,
            targets=self.targets(),
            tolerance=self.tolerance,
            interval_seconds=self.interval,
            warmup_seconds=self.warmup,
            scale_up_max_step=self.scale_up.max_step,
            scale_up_period_seconds=self.scale_up.period,
            scale_down_stabilization_seconds=self.scale_down.stabilization,
        )
