"""The N largest processes by resident memory and the N busiest by CPU since the last scrape.

There is deliberately no rank label: when two processes swap places no new series appear.
With ``top_owner: true`` each series also names the process's owner (core/owner.py), read
from its cgroup once per process.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from procpilot.core.cpu import CpuTracker
from procpilot.core.procfs import Proc, Snapshot
from procpilot.exporter import families
from procpilot.exporter.collectors.shared import Shared
from procpilot.exporter.config import ExporterConfig


def cpu_rates(
    procs: list[Proc], now: float, used: CpuTracker[tuple[int, int]], prev_at: float | None
) -> list[tuple[float, Proc]]:
    """Cores used by each process since the previous scrape (``prev_at``).

    A process not seen at the previous scrape is averaged over its life since it started
    (or since the previous scrape, if it started before that and was missed).
    """
    rates = []
    for p in procs:
        u = used.observe(p.key, p.utime, p.stime, now)
        elapsed = u.seconds
        if elapsed is None:
            elapsed = now - (p.start_time if prev_at is None else max(p.start_time, prev_at))
        if elapsed > 0 and u.total > 0:
            rates.append((u.total / elapsed, p))
    used.sweep()
    return rates


class Top:
    def __init__(self, shared: Shared) -> None:
        self.caps = shared.caps
        self.n = 0
        self.owner = False
        self._used: CpuTracker[tuple[int, int]] = CpuTracker()
        self._prev_at: float | None = None

    def configure(self, config: ExporterConfig) -> None:
        self.n = config.top_processes
        self.owner = config.top_owner

    def collect(self, snap: Snapshot) -> Iterator[Metric]:
        procs = list(snap)
        rates = cpu_rates(procs, snap.taken_at, self._used, self._prev_at)
        self._prev_at = snap.taken_at
        omit = () if self.owner else ("owner",)

        memory = families.TOP_MEMORY.new(omit)
        for p in heapq.nlargest(self.n, procs, key=lambda p: p.rss_bytes):
            memory.add_metric(self._labels(p, snap), p.rss_bytes)
        yield memory

        cpu = families.TOP_CPU.new(omit)
        for rate, p in heapq.nlargest(self.n, rates, key=lambda r: r[0]):
            cpu.add_metric(self._labels(p, snap), rate)
        yield cpu

    def _labels(self, p: Proc, snap: Snapshot) -> list[str]:
        if not self.owner:
            return [str(p.pid), p.comm]
        return [str(p.pid), p.comm, self.caps.label(snap.owner(p).label)]
