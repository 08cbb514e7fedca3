"""Host-wide process summary: counts by state, threads, total resident memory, and the
kernel's caps on pids and threads."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from procpilot.core.procfs import Snapshot
from procpilot.core.procfs.kernel import read_kernel_limits
from procpilot.exporter import families
from procpilot.exporter.collectors.shared import Stateless
from procpilot.exporter.families import STATE_NAMES, STATES


class Summary(Stateless):
    def collect(self, snap: Snapshot) -> Iterator[Metric]:
        counts = dict.fromkeys(STATES, 0)
        threads = rss = 0
        for p in snap:
            counts[STATE_NAMES.get(p.state, "other")] += 1
            threads += p.num_threads
            rss += p.rss_bytes
        by_state = families.PROCESSES.new()
        for state, n in counts.items():
            by_state.add_metric([state], n)
        yield by_state
        yield families.THREADS.of(threads)
        yield families.RESIDENT_MEMORY.of(rss)
        limits = read_kernel_limits(snap.reader.fs)
        if limits.pid_max is not None:
            yield families.PIDS_LIMIT.of(limits.pid_max)
        if limits.threads_max is not None:
            yield families.THREADS_LIMIT.of(limits.threads_max)
