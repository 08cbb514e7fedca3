"""Threads on the host by state, as node_exporter's processes collector counts them.

A single-threaded process's thread is the process itself, so only processes with more
than one thread cost reads: one /proc/<pid>/task/<tid>/stat per thread. On a host of many
thread-heavy programs this is the most expensive default view; --no-collector.threads
turns it off.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from procpilot.core.procfs import Snapshot
from procpilot.exporter import families
from procpilot.exporter.collectors.shared import Stateless
from procpilot.exporter.families import STATE_NAMES, STATES


class Threads(Stateless):
    def collect(self, snap: Snapshot) -> Iterator[Metric]:
        letters = Counter([p.state for p in snap if p.num_threads <= 1])
        for p in snap:
            if p.num_threads > 1:
                letters.update(snap.thread_states(p))
        counts = dict.fromkeys(STATES, 0)
        for letter, n in letters.items():
            counts[STATE_NAMES.get(letter, "other")] += n
        family = families.THREAD_STATES.new()
        for state, n in counts.items():
            family.add_metric([state], n)
        yield family
