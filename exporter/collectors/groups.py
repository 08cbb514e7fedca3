"""Configured process groups: count, memory, CPU, threads, age; opt-in per-process memory.

Matching is costly (it may read exe and cmdline), so each process is matched once per
(pid, start time, comm) and the answer kept until the process goes away. CPU counters are
built from per-scrape deltas so they stay monotonic when members exit. This runs over every
process at every scrape: one dict lookup per process, one pass.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client.metrics_core import Metric

from procpilot.core.cpu import CpuTracker
from procpilot.core.procfs import Proc, Snapshot
from procpilot.exporter import families
from procpilot.exporter.collectors.drops import Drops
from procpilot.exporter.config import PLACEHOLDER, ExporterConfig, Group


@dataclass(slots=True)
class _Totals:
    processes: int = 0
    rss: int = 0
    threads: int = 0
    oldest: float = 0.0
    members: list[Proc] = field(default_factory=list)  # only for per-process groups


class _Seen(NamedTuple):
    """A process's group as matched, valid while its comm stays the same."""

    comm: str
    hit: tuple[Group, str] | None


class Matcher:
    """First-match-wins assignment of a process to a group name (or None)."""

    def __init__(self, groups: list[Group]) -> None:
        self.groups = [(g, re.compile(g.cmdline) if g.cmdline else None) for g in groups]

    def match(self, p: Proc, snap: Snapshot) -> tuple[Group, str] | None:
        for group, cmdline_re in self.groups:
            if group.comm and p.comm not in group.comm:
                continue
            if group.exe:
                exe = snap.exe(p)
                if exe not in group.exe and os.path.basename(exe) not in group.exe:
                    continue
            captures: dict[str, str] = {}
            if cmdline_re is not None:
                found = cmdline_re.search(" ".join(snap.cmdline(p)))
                if found is None:
                    continue
                captures = {k: v or "" for k, v in found.groupdict().items()}
            return group, self._name(group, p, snap, captures)
        return None

    @staticmethod
    def _name(group: Group, p: Proc, snap: Snapshot, captures: dict[str, str]) -> str:
        if group.is_static:
            return group.name

        def fill(m: re.Match[str]) -> str:
            key = m.group(1)
            if key == "comm":
                return p.comm
            if key == "exe_basename":
                return os.path.basename(snap.exe(p))
            if key == "user":
                return snap.user(p)
            return captures[key]

        return PLACEHOLDER.sub(fill, group.name)


class Groups:
    def __init__(self, config: ExporterConfig, drops: Drops) -> None:
        self.matcher = Matcher(config.groups)
        self.max_groups = config.max_groups
        self.drops = drops
        self._seen: dict[tuple[int, int], _Seen] = {}
        self._used: CpuTracker[tuple[int, int]] = CpuTracker()
        # Known names, in first-seen order; templated names stay once seen so that their
        # counters never vanish. Static names are known before any process matches.
        self._names: dict[str, Group] = {g.name: g for g in config.groups if g.is_static}
        self._cpu: dict[str, list[float]] = {name: [0.0, 0.0] for name in self._names}

    def _lookup(self, p: Proc, snap: Snapshot) -> _Seen:
        """The process's group, matched only when it is new or exec'd (comm changed)."""
        entry = self._seen.get(p.key)
        if entry is not None and entry.comm == p.comm:
            return entry
        return _Seen(p.comm, self.matcher.match(p, snap))

    def _assign(self, snap: Snapshot) -> dict[str, _Totals]:
        """Totals per group, adding each member's CPU since the last scrape to its counters.

        Every process's CPU is tracked, grouped or not, so one that execs into a group
        adds only what it used since the last scrape, not its whole life.
        """
        totals = {name: _Totals() for name in self._names}
        seen: dict[tuple[int, int], _Seen] = {}
        dropped: set[str] = set()
        for p in snap:
            if p.is_kernel_thread:
                continue
            entry = seen[p.key] = self._lookup(p, snap)
            used = self._used.observe(p.key, p.utime, p.stime)
            if entry.hit is None:
                continue
            group, name = entry.hit
            t = totals.get(name)
            if t is None:
                if len(self._names) >= self.max_groups:
                    dropped.add(name)
                    continue
                self._names[name] = group
                self._cpu[name] = [0.0, 0.0]
                t = totals[name] = _Totals()
            t.processes += 1
            t.rss += p.rss_bytes
            t.threads += p.num_threads
            t.oldest = p.start_time if not t.oldest else min(t.oldest, p.start_time)
            if group.per_process:
                t.members.append(p)
            acc = self._cpu[name]
            acc[0] += used.user
            acc[1] += used.system
        self._seen = seen
        self._used.sweep()
        self.drops.add("max_groups", len(dropped))
        return totals

    def collect(self, snap: Snapshot) -> Iterator[Metric]:
        if not self.matcher.groups:
            return
        totals = self._assign(snap)
        count = families.GROUP_PROCESSES.new()
        rss = families.GROUP_RESIDENT_MEMORY.new()
        threads = families.GROUP_THREADS.new()
        oldest = families.GROUP_OLDEST.new()
        cpu = families.GROUP_CPU.new()
        per_process = families.PROCESS_RESIDENT_MEMORY.new()
        for name, t in totals.items():
            count.add_metric([name], t.processes)
            rss.add_metric([name], t.rss)
            threads.add_metric([name], t.threads)
            if t.processes:
                oldest.add_metric([name], t.oldest)
            user, system = self._cpu[name]
            cpu.add_metric([name, "user"], user)
            cpu.add_metric([name, "system"], system)
            group = self._names[name]
            if group.per_process:
                kept = t.members[: group.max_series]
                self.drops.add("max_series", len(t.members) - len(kept))
                for p in kept:
                    per_process.add_metric([name, str(p.pid)], p.rss_bytes)
        yield from (count, rss, threads, oldest, cpu, per_process)
