"""The custom collector behind /metrics: one procfs snapshot per scrape, shared by all views.

Concurrent scrapes do not each walk /proc: they queue on one lock, and a scrape that was
waiting while another finished reuses that fresh result. ``describe()`` returns nothing so
that registering the collector does not trigger a scan at start-up.

The collectors' output is capped at ``max_scrape_series`` samples per scrape (the rest is
dropped and counted), so a config that makes too many series cannot make a scrape unbounded;
the exporter's own metrics below the collectors' are always exported. The collectors, and
the taskstats listener they read exits from, live as long as the exporter: a reload only
reconfigures them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector as RegistryCollector

from procpilot.core.procfs import READ_ERROR_REASONS, ProcReader
from procpilot.core.reloads import Reloads
from procpilot.core.version import build_info
from procpilot.exporter import families
from procpilot.exporter.collectors import COLLECTORS, Caps, Shared
from procpilot.exporter.config import ExporterConfig
from procpilot.exporter.exits import ExitListener

log = logging.getLogger("procpilot.exporter")


class ScrapeCollector(RegistryCollector):
    def __init__(self, reader: ProcReader, config: ExporterConfig, enabled: list[str],
                 exits: ExitListener | None = None) -> None:
        self.reader = reader
        self.enabled = enabled
        self.exits = exits
        self.shared = Shared(Caps(), exits)
        self.collectors = {name: COLLECTORS[name](self.shared) for name in enabled}
        self.max_scrape_series = config.max_scrape_series
        self._lock = threading.Lock()
        self._result: list[Metric] = []
        self._done_at = float("-inf")
        self._read_errors = dict.fromkeys(READ_ERROR_REASONS, 0)
        self.reloads = Reloads.since_start(time.time)
        self.configure(config)

    def configure(self, config: ExporterConfig) -> None:
        """Hand a new config to every collector; what they accumulated stays."""
        with self._lock:
            for collector in self.collectors.values():
                collector.configure(config)
            self.shared.caps.label_limit = config.max_label_length
            self.max_scrape_series = config.max_scrape_series
            self._done_at = float("-inf")
            self._listen("groups" in self.collectors and bool(config.groups))

    def close(self) -> None:
        if self.exits is not None:
            self.exits.stop()

    def _listen(self, wanted: bool) -> None:
        """Run the taskstats listener while some group can use it."""
        if self.exits is None:
            return
        if not wanted:
            self.exits.stop()
        elif not self.exits.listening:
            reason = self.exits.start()
            if reason is None:
                log.info("taskstats: accounting processes that end between scrapes")
            else:
                log.warning("taskstats unavailable: processes that end between scrapes are "
                            "counted up to their last scrape only",
                            extra={"fields": {"err": reason}})

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
        budget = self.max_scrape_series
        for name, collector in self.collectors.items():
            started = time.perf_counter()
            ok = snap is not None
            if snap is not None:
                try:
                    metrics = list(collector.collect(snap))
                except Exception:
                    log.exception("collector failed", extra={"fields": {"collector": name}})
                    ok = False
                else:
                    budget = self._within(metrics, budget)
                    yield from metrics
            duration.add_metric([name], time.perf_counter() - started)
            success.add_metric([name], 1 if ok else 0)
        yield duration
        yield success
        if snap is not None:  # after the collectors: their reads of detail files count too
            for reason, n in snap.errors.counts().items():
                self._read_errors[reason] += n
        yield from self._own_metrics()

    def _within(self, metrics: list[Metric], budget: int) -> int:
        """Cut metrics to the samples left in the scrape's budget; return what is left."""
        for m in metrics:
            if len(m.samples) > budget:
                self.shared.caps.drop("max_scrape_series", len(m.samples) - budget)
                m.samples = m.samples[:budget]
            budget -= len(m.samples)
        return budget

    def _own_metrics(self) -> Iterator[Metric]:
        errors = families.READ_ERRORS.new()
        for reason, n in self._read_errors.items():
            errors.add_metric([reason], n)
        yield errors
        yield from self.shared.caps.metrics()
        yield from self.shared.exit_counts.metrics()
        yield from self.reloads.metrics(families.RELOADS)
        listening = self.exits is not None and self.exits.listening
        yield families.TASKSTATS_LISTENING.of(1 if listening else 0)
        yield build_info(families.BUILD_INFO)
