"""Series left out because of a cap: procpilot_exporter_series_dropped_total."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from procpilot.exporter import families


class Drops:
    """Monotonic per-reason counters; every reason is exported from the first scrape."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(families.DROP_REASONS, 0)

    def add(self, reason: str, n: int) -> None:
        if n:
            self.counts[reason] += n

    def metric(self) -> Metric:
        family = families.SERIES_DROPPED.new()
        for reason, n in self.counts.items():
            family.add_metric([reason], n)
        return family
