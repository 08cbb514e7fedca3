"""Orphaned processes: left behind when their session's leader went away.

A process counts as an orphan when all of these hold:
- it is not a kernel thread, not a zombie, and not a session leader itself (daemons that
  detached on purpose with setsid() lead their own session and are never reported);
- the leader of its session no longer exists;
- its parent is PID 1, or a process of another session: children inherit their parent's
  session, so a parent outside it means the process was re-parented (to init or to a
  child subreaper such as a container runtime or procpilot's controller).
Limits: a classic double-forking daemon (fork, setsid, fork, exit) matches this rule by
design; list such names under ``orphans.exclude``. Session ids are pids, so a recycled
pid can hide a gone leader until that pid is freed again.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from procpilot.core.procfs import Proc, Snapshot
from procpilot.exporter import families
from procpilot.exporter.collectors.shared import Shared
from procpilot.exporter.config import ExporterConfig


def is_orphan(p: Proc, procs: dict[int, Proc]) -> bool:
    if p.pid == p.session or p.session <= 0 or p.is_kernel_thread:
        return False
    if p.state == "Z" and p.is_zombie:  # the cheap test first: every process comes here
        return False
    if p.pid == 1 or p.ppid == 0:
        return False
    leader = procs.get(p.session)
    if leader is not None and leader.session == p.session:
        return False
    parent = procs.get(p.ppid)
    return p.ppid == 1 or parent is None or parent.session != p.session


class Orphans:
    def __init__(self, shared: Shared) -> None:
        self.exclude: frozenset[str] = frozenset()

    def configure(self, config: ExporterConfig) -> None:
        self.exclude = frozenset(config.orphans.exclude)

    def collect(self, snap: Snapshot) -> Iterator[Metric]:
        counts: dict[tuple[str, str], int] = {}
        for p in snap:
            if p.comm not in self.exclude and is_orphan(p, snap.procs):
                key = (p.comm, snap.user(p))
                counts[key] = counts.get(key, 0) + 1
        family = families.ORPHANS.new()
        for (name, user), n in counts.items():
            family.add_metric([name, user], n)
        yield family
