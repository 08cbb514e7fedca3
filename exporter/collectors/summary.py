"""Host-wide process summary: counts by state, threads, total resident memory."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from procpilot.core.procfs import Snapshot
from procpilot.exporter.collectors.drops import Drops
from procpilot.exporter.config import ExporterConfig

# proc(5) state letters; 'x' is the older spelling of dead. Anything else (W, P, K, ...) is "other".
STATE_NAMES = {
    "R": "running",
    "S": "sleeping",
    "D": "disk_sleep",
    "T": "stopped",
    "t": "tracing_stop",
    "Z": "zombie",
    "X": "dead",
    "x": "dead",
    "I": "idle",
}
STATES = (
    "running",
    "sleeping",
    "disk_sleep",
    "stopped",
    "tracing_stop",
    "zombie",
    "dead",
    "idle",
    "other",
)


class Summary:
    def __init__(self, config: ExporterConfig, drops: Drops) -> None:
        pass

    def collect(self, snap: Snapshot) -> Iterator[Metric]:
        counts = dict.fromkeys(STATES, 0)
        threads = rss = 0
        for p in snap:
            counts[STATE_NAMES.get(p.state, "other")] += 1
            threads += p.num_threads
            rss += p.rss_bytes
        by_state = GaugeMetricFamily(
            "procpilot_processes", "Processes on the host by state.", labels=["state"]
        )
        for state, n in counts.items():
            by_state.add_metric([state], n)
        yield by_state
        yield GaugeMetricFamily("procpilot_threads", "Threads on the host.", value=threads)
        yield GaugeMetricFamily(
            "procpilot_processes_resident_memory_bytes",
            "Resident memory summed over all processes (shared pages count once per process).",
            value=rss,
        )
