"""Series left out because of a cap: procpilot_exporter_series_dropped_total."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily

REASONS = ("max_series", "max_groups")


class Drops:
    """Monotonic per-reason counters; every reason is exported from the first scrape."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(REASONS, 0)

    def add(self, reason: str, n: int) -> None:
        if n:
            self.counts[reason] += n

    def metric(self) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "procpilot_exporter_series_dropped",
            "Series not exported because a configured cap was reached.",
            labels=["reason"],
        )
        for reason, n in self.counts.items():
            family.add_metric([reason], n)
        return family
