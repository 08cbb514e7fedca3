"""Collectors: each derives metric families from one shared procfs snapshot.

They are registered here by name; the names are the ``--collector.<name>`` flags and the
``collector`` label of the exporter's own duration and success metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client.metrics_core import Metric

from procpilot.core.procfs import Snapshot
from procpilot.exporter.collectors import groups, orphans, summary, top, zombies
from procpilot.exporter.collectors.drops import Drops
from procpilot.exporter.config import ExporterConfig
from procpilot.exporter.families import COLLECTOR_NAMES


class Collector(Protocol):
    def collect(self, snap: Snapshot) -> Iterable[Metric]: ...


Factory = Callable[[ExporterConfig, Drops], Collector]

COLLECTORS: dict[str, Factory] = dict(zip(
    COLLECTOR_NAMES,
    (summary.Summary, zombies.Zombies, orphans.Orphans, groups.Groups, top.Top),
    strict=True,
))

__all__ = ["COLLECTORS", "Collector", "Drops", "Factory"]
