"""What the config's caps left out: series dropped, label values cut short.

One instance lives as long as the exporter (across config reloads), so both counters are
monotonic; every drop reason is exported from the first scrape.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from procpilot.exporter import families

HASH_DIGITS = 16


class Caps:
    def __init__(self, label_limit: int = 256) -> None:
        self.label_limit = label_limit
        self.dropped = dict.fromkeys(families.DROP_REASONS, 0)
        self.truncated = 0

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] += n

    def label(self, value: str) -> str:
        """value, or when longer than the limit its start, ``~`` and 16 hex digits of the
        SHA-256 of the whole: bounded, and distinct values stay distinct."""
        if len(value) <= self.label_limit:
            return value
        self.truncated += 1
        digest = hashlib.sha256(value.encode()).hexdigest()[:HASH_DIGITS]
        return value[: self.label_limit - HASH_DIGITS - 1] + "~" + digest

    def metrics(self) -> Iterator[Metric]:
        family = families.SERIES_DROPPED.new()
        for reason, n in self.dropped.items():
            family.add_metric([reason], n)
        yield family
        yield families.LABELS_TRUNCATED.of(self.truncated)
