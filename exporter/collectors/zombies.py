"""Zombie processes grouped by their parent's name: the parent is what needs fixing."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from procpilot.core.procfs import Snapshot
from procpilot.exporter import families
from procpilot.exporter.collectors.shared import Stateless


class Zombies(Stateless):
    def collect(self, snap: Snapshot) -> Iterator[Metric]:
        count: dict[str, int] = {}
        oldest: dict[str, float] = {}
        for p in snap:
            if p.state != "Z" or not p.is_zombie:  # the cheap test first: every process
                continue
            parent = snap.procs.get(p.ppid)
            name = parent.comm if parent else "unknown"
            count[name] = count.get(name, 0) + 1
            oldest[name] = min(oldest.get(name, p.start_time), p.start_time)
        zombies = families.ZOMBIES.new()
        started = families.ZOMBIE_OLDEST.new()
        for name, n in count.items():
            zombies.add_metric([name], n)
            started.add_metric([name], oldest[name])
        yield zombies
        yield started
