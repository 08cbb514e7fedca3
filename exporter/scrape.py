"""The custom collector behind /metrics: one procfs snapshot per scrape, shared by all views.

Concurrent scrapes do not each walk /proc: they queue on one lock, and a scrape that was
waiting while another finished reuses that fresh result. ``describe()`` returns nothing so
that registering the collector does not trigger a scan at start-up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector as RegistryCollector

from procpilot.core.procfs import ProcReader, ReadErrors
from procpilot.core.version import build_info
from procpilot.exporter import families
from procpilot.exporter.collectors import COLLECTORS, Collector, Drops
from procpilot.exporter.config import ExporterConfig

log = logging.getLogger("procpilot.exporter")


class ScrapeCollector(RegistryCollector):
    def __init__(self, reader: ProcReader, config: ExporterConfig, enabled: list[str]) -> None:
        self.reader = reader
        self.enabled = enabled
        self.drops = Drops()
        self._lock = threading.Lock()
        self._result: list[Metric] = []
        self._done_at = float("-inf")
        self._read_errors = dict.fromkeys(ReadErrors._fields, 0)
        self.configure(config)

    def configure(self, config: ExporterConfig) -> None:
        """(Re)build the collectors for a new config; state kept between scrapes restarts."""
        collectors = {name: COLLECTORS[name](config, self.drops) for name in self.enabled}
        with self._lock:
            self.collectors: dict[str, Collector] = collectors
            self._done_at = float("-inf")

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        asked_at = time.monotonic()
        with self._lock:
            if self._done_at < asked_at:
                self._result = list(self._gather())
                self._done_at = time.monotonic()
            return iter(self._result)

    def _gather(self) -> Iterator[Metric]:
        duration = families.COLLECTOR_DURATION.new()
        success = families.COLLECTOR_SUCCESS.new()
        started = time.perf_counter()
        try:
            snap = self.reader.snapshot()
        except OSError as e:
            fields = {"root": self.reader.fs.root, "err": e}
            log.error("cannot read procfs", extra={"fields": fields})
            snap = None
        yield families.SNAPSHOT_DURATION.of(time.perf_counter() - started)
        if snap is not None:
            for reason, n in snap.errors._asdict().items():
                self._read_errors[reason] += n
        for name, collector in self.collectors.items():
            started = time.perf_counter()
            ok = snap is not None
            if snap is not None:
                try:
                    yield from list(collector.collect(snap))
                except Exception:
                    log.exception("collector failed", extra={"fields": {"collector": name}})
                    ok = False
            duration.add_metric([name], time.perf_counter() - started)
            success.add_metric([name], 1 if ok else 0)
        yield duration
        yield success
        errors = families.READ_ERRORS.new()
        for reason, n in self._read_errors.items():
            errors.add_metric([reason], n)
        yield errors
        yield self.drops.metric()
        yield build_info(families.BUILD_INFO)
