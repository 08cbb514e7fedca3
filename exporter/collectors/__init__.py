"""Collectors: each derives metric families from one shared procfs snapshot.

They are registered here by name; the names are the ``--collector.<name>`` flags and the
``collector`` label of the exporter's own duration and success metrics. A collector is
made once and told each config (at start-up and at every reload) with ``configure``, so
what it accumulates, its counters above all, survives a reload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client.metrics_core import Metric

from procpilot.core.procfs import Snapshot
from procpilot.exporter.collectors import groups, orphans, summary, threads, top, zombies
from procpilot.exporter.collectors.caps import Caps
from procpilot.exporter.collectors.shared import Shared
from procpilot.exporter.config import ExporterConfig
from procpilot.exporter.families import COLLECTOR_NAMES


class Collector(Protocol):
    def configure(self, config: ExporterConfig) -> None: ...

    def collect(self, snap: Snapshot) -> Iterable[Metric]: ...


Factory = Callable[[Shared], Collector]

COLLECTORS: dict[str, Factory] = dict(zip(
    COLLECTOR_NAMES,
    (summary.Summary, threads.Threads, zombies.Zombies, orphans.Orphans, groups.Groups,
     top.Top),
    strict=True,
))

__all__ = ["COLLECTORS", "Caps", "Collector", "Factory", "Shared"]
