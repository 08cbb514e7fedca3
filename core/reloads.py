"""Config reloads as both services export them: a counter by result, whether the last one
succeeded, and when the config was last loaded. The names follow Prometheus's own
``prometheus_config_last_reload_successful``, so the same alert covers every service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from procpilot.core.metricdef import Family, MetricFamily

RESULTS = ("success", "failure")


def families(prefix: str, how: str) -> tuple[Family, Family, Family]:
    """The three reload families of a service whose metrics start with ``prefix``."""
    return (
        Family(f"{prefix}_config_reloads_total", "counter", f"Config reloads ({how}) by result.",
               ("result",), {"result": RESULTS}),
        Family(f"{prefix}_config_last_reload_successful", "gauge",
               "1 if the last config reload succeeded (or none was tried), as Prometheus "
               "itself reports it."),
        Family(f"{prefix}_config_last_reload_success_timestamp_seconds", "gauge",
               "Unix time the config was last loaded successfully (start-up counts)."),
    )


@dataclass
class Reloads:
    """What the reloads of one service came to; the start-up load counts as a success."""

    clock: Callable[[], float]  # wall clock: the timestamp is exported
    last_success: float
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    last_ok: bool = True

    @classmethod
    def since_start(cls, clock: Callable[[], float]) -> Reloads:
        return cls(clock, clock())

    def copy(self) -> Reloads:
        return replace(self, counts=dict(self.counts))

    def record(self, ok: bool) -> None:
        self.counts["success" if ok else "failure"] += 1
        self.last_ok = ok
        if ok:
            self.last_success = self.clock()

    def metrics(self, declared: tuple[Family, Family, Family]) -> Iterator[MetricFamily]:
        total, last_ok, last_success = declared
        counter = total.new()
        for result, n in self.counts.items():
            counter.add_metric([result], n)
        yield counter
        yield last_ok.of(1 if self.last_ok else 0)
        yield last_success.of(self.last_success)
