"""Configured process groups: count, memory by kind, CPU, faults, context switches, I/O,
open files, states, threads, age; opt-in per-process memory.

Matching is costly (it may read exe, cmdline and the cgroup), so each process is matched
once per (pid, start time, comm) and the answer kept until the process goes away. With
``children: true`` a process that matches no group joins its parent's group.

Counters (CPU, faults, context switches, I/O) add what each member used since the last
scrape (core/cpu.py), so they stay monotonic when members exit. They are kept per group
name: a config reload keeps those of every name the new config still makes. Static names
stay for the exporter's lifetime; a name made by a template goes, series and counters,
once it has been idle (no member, no exit credited) for IDLE_NAME_EXPIRY, so that
max_groups, which caps only these names, does not fill up with names of the past.

When taskstats reports exits (exporter/exits.py), what members used after
their last scrape, and all that processes living between two scrapes used, is added too;
zombies (not processes whose main thread exited while others run) are then left to their
exit records.

This runs over every process at every scrape: one dict lookup per process, one pass, and
the extra files (status, io, fd, smaps_rollup) only for members of groups that want them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client.metrics_core import Metric

from procpilot.core.cpu import Tracker, grown
from procpilot.core.procfs import Proc, Snapshot
from procpilot.exporter import families
from procpilot.exporter.collectors.exits import Credit
from procpilot.exporter.collectors.matcher import Hit, Matcher
from procpilot.exporter.collectors.shared import Shared
from procpilot.exporter.config import ExporterConfig, Group
from procpilot.exporter.families import STATE_NAMES, STATES

NAN = float("nan")  # a counter that was not read: grows by nothing
# Counters per group, in this order; per process the same cumulative values are tracked.
USER, SYSTEM, MINFLT, MAJFLT, VOLUNTARY, INVOLUNTARY, READ, WRITE = range(8)
STATE_INDEX = {letter: STATES.index(name) for letter, name in STATE_NAMES.items()}
OTHER_STATE = STATES.index("other")
MAX_DEPTH = 256  # ancestors walked to find a parent's group
# Seconds a template-made name may go without members or credited exits before it is
# dropped: longer than the memberships of processes that went away are kept for crediting
# (exits.RETENTION), and than any sensible scrape interval, so a name in use never goes.
IDLE_NAME_EXPIRY = 600.0


@dataclass(slots=True)
class _Totals:
    processes: int = 0
    rss: int = 0
    vsize: int = 0
    swap: int = 0
    pss: int = 0
    swap_pss: int = 0
    threads: int = 0
    fds: int = 0
    worst_fd_ratio: float = 0.0
    oldest: float = 0.0
    states: list[int] = field(default_factory=lambda: [0] * len(STATES))
    members: list[Proc] = field(default_factory=list)  # only for per-process groups


class Seen(NamedTuple):
    """A process's group as matched, valid while its start and comm stay the same."""

    start: int  # start ticks: with the pid, which process this is
    comm: str  # an exec that changes comm means matching again
    hit: Hit | None


class Groups:
    def __init__(self, shared: Shared) -> None:
        self.caps = shared.caps
        self.exits = shared.exits
        self.matcher = Matcher([], self.caps)
        self.max_groups = 0
        self.inherit = False  # some group takes children
        self._names: dict[str, Group] = {}  # exported names, in first-seen order
        self._made: dict[str, float] = {}  # template-made names: when last used (monotonic)
        self._counters: dict[str, list[float]] = {}
        self._values: Tracker[tuple[int, int], tuple[float, ...]] = Tracker()
        self._seen: dict[int, Seen] = {}  # by pid, this scrape's
        self._rematch = False  # the config changed: match every process again
        self._credit = Credit(shared.exit_counts)
        self._dropped: set[str] = set()  # names over max_groups in this scrape

    def configure(self, config: ExporterConfig) -> None:
        """New groups: every process is matched again. Counters of the names the new config
        still makes (a static name it has, or one made by a template it still has) go on
        from where they were; the others are dropped."""
        self.matcher = Matcher(config.groups, self.caps)
        self.max_groups = config.max_groups
        self.inherit = any(g.children for g in config.groups)
        by_template: dict[str, Group] = {}
        for g in config.groups:
            by_template.setdefault(g.name, g)
        names = {name: g for name, g in by_template.items() if g.is_static}
        for name, old in self._names.items():
            if not old.is_static and old.name in by_template:
                names.setdefault(name, by_template[old.name])
        self._names = names
        self._counters = {name: self._counters.get(name) or [0.0] * 8 for name in names}
        now = time.monotonic()
        self._made = {name: self._made.get(name, now) for name, g in names.items()
                      if not g.is_static}
        self._rematch = True

    def collect(self, snap: Snapshot) -> Iterator[Metric]:
        if not self.matcher.groups:
            return
        exits = self.exits if self.exits is not None and self.exits.listening else None
        totals = self._assign(snap, exits is not None)
        now = time.monotonic()
        if exits is not None:
            batch = exits.take(snap.procs)
            for hit, values in self._credit.exits(batch, snap, self._seen, self):
                self._add(hit, values)
                if hit.name in self._made:
                    self._made[hit.name] = now
        self._values.sweep()
        self._expire(totals, now)
        self.caps.drop("max_groups", len(self._dropped))
        self._dropped.clear()
        yield from self._families(totals)

    # --- who is in which group ------------------------------------------------------------

    def _assign(self, snap: Snapshot, exits: bool) -> dict[str, _Totals]:
        """Totals per group, adding each member's counters since the last scrape.

        Every process's CPU and faults are tracked, grouped or not, so one that execs into
        a group adds only what it used since the last scrape, not its whole life. With
        exits reported, zombies are left to their exit records.
        """
        totals = {name: _Totals() for name in self._names}
        # After a reload the last scrape's memberships are the old config's: match anew.
        cached = {} if self._rematch else self._seen
        self._rematch = False
        seen: dict[int, Seen] = {}
        update = self._values.update
        for p in snap:
            if p.is_kernel_thread:
                continue
            entry = cached.get(p.pid)
            if entry is None or entry.start != p.start_ticks or entry.comm != p.comm:
                entry = seen.get(p.pid) or self._resolve(p, snap, seen, cached)
            seen[p.pid] = entry
            hit = entry.hit
            t = None if hit is None else self._totals(hit, totals)
            values: tuple[float, ...]
            if t is None or hit is None:
                hit = None
                values = (p.utime, p.stime, p.minflt, p.majflt, NAN, NAN, NAN, NAN)
            else:
                values = self._read(p, hit.group, t, snap)
            if exits and p.state == "Z" and p.is_zombie:  # (the cheap test first)
                self._keep(p.key)
                continue
            before = update(p.key, values)
            if hit is not None:
                self._add(hit, grown(values, before))
        if exits:
            self._credit.memberships_moved(self._seen, seen, snap.taken_at, self)
        self._seen = seen
        return totals

    def _keep(self, key: tuple[int, int]) -> None:
        """A zombie is left to its exit record, which adds what it used after the values
        scrapes last counted: keep those for as long as the zombie is there, however many
        scrapes come before the record does."""
        last = self._values.last(key)
        if last is not None:
            self._values.update(key, last)

    def _resolve(self, p: Proc, snap: Snapshot, seen: dict[int, Seen],
                 cached: dict[int, Seen]) -> Seen:
        """Match p; with children: groups, first match its ancestors that neither this pass
        (seen) nor the last one under the same config (cached) has matched."""
        chain = [p]
        above: Hit | None = None  # the group of the nearest ancestor already matched
        q = p
        while self.inherit and len(chain) < MAX_DEPTH:
            parent = snap.procs.get(q.ppid)
            if parent is None or parent.is_kernel_thread or parent.pid == q.pid:
                break
            known = seen.get(parent.pid) or _valid(cached.get(parent.pid), parent)
            if known is not None:
                above = known.hit
                break
            chain.append(parent)
            q = parent
        entry = Seen(p.start_ticks, p.comm, None)
        for q in reversed(chain):
            hit = self.matcher.match(q, snap)
            if hit is None and above is not None and above.group.children:
                hit = above
            entry = seen[q.pid] = Seen(q.start_ticks, q.comm, hit)
            above = hit
        return entry

    def _totals(self, hit: Hit, totals: dict[str, _Totals]) -> _Totals | None:
        """The totals of hit's name, made when the name is new; None beyond max_groups."""
        t = totals.get(hit.name)
        if t is None:
            if not self.known(hit):
                return None
            t = totals[hit.name] = _Totals()
        return t

    def known(self, hit: Hit, make: bool = True) -> bool:
        """Whether hit's name is exported, making it so (with make) when max_groups allows."""
        if hit.name in self._names:
            return True
        if not make:
            return False
        if len(self._made) >= self.max_groups:  # static names are not counted
            self._dropped.add(hit.name)
            return False
        self._names[hit.name] = hit.group
        self._counters[hit.name] = [0.0] * 8
        self._made[hit.name] = time.monotonic()
        return True

    def _expire(self, totals: dict[str, _Totals], now: float) -> None:
        """Drop template-made names idle for IDLE_NAME_EXPIRY: their series end here."""
        made = self._made
        for name, t in totals.items():
            if t.processes and name in made:
                made[name] = now
        idle = [name for name, used in made.items() if used < now - IDLE_NAME_EXPIRY]
        for name in idle:
            del made[name], self._names[name], self._counters[name]
            totals.pop(name, None)

    def last_values(self, key: tuple[int, int]) -> tuple[float, ...] | None:
        return self._values.last(key)

    # --- what a member adds -------------------------------------------------------------

    @staticmethod
    def _read(p: Proc, group: Group, t: _Totals, snap: Snapshot) -> tuple[float, ...]:
        """Add p to its group's gauges; return its cumulative counter values."""
        t.processes += 1
        t.rss += p.rss_bytes
        t.vsize += p.vsize_bytes
        t.threads += p.num_threads
        if not t.oldest or p.start_time < t.oldest:
            t.oldest = p.start_time
        t.states[STATE_INDEX.get(p.state, OTHER_STATE)] += 1
        if group.per_process:
            t.members.append(p)
        voluntary = involuntary = read = write = NAN
        if p.is_zombie:  # no memory, no files: nothing more to read
            return p.utime, p.stime, p.minflt, p.majflt, voluntary, involuntary, read, write
        if group.swap or group.context_switches:
            status = snap.status(p)
            if status is not None:
                t.swap += status.swap_bytes
                voluntary, involuntary = status.voluntary_switches, status.involuntary_switches
        if group.io and (io := snap.io(p)) is not None:
            read, write = io
        if group.fds and (fds := snap.open_fds(p)) is not None:
            t.fds += fds
            limit = snap.open_files_limit(p, fds)
            if limit:
                t.worst_fd_ratio = max(t.worst_fd_ratio, fds / limit)
        # A process whose main thread exited (state Z, threads left) shows no address space
        # through /proc/<pid>: its smaps_rollup answers ESRCH.
        if group.pss and p.state != "Z" and (proportional := snap.proportional(p)) is not None:
            t.pss += proportional.pss_bytes
            t.swap_pss += proportional.swap_pss_bytes
        return p.utime, p.stime, p.minflt, p.majflt, voluntary, involuntary, read, write

    def _add(self, hit: Hit, values: list[float]) -> None:
        counters = self._counters.get(hit.name)
        if counters is not None:
            for i, v in enumerate(values):
                if v:
                    counters[i] += v

    # --- exposition -----------------------------------------------------------------------

    def _families(self, totals: dict[str, _Totals]) -> Iterator[Metric]:
        f = families
        out = {family: family.new() for family in (
            f.GROUP_PROCESSES, f.GROUP_RESIDENT_MEMORY, f.GROUP_VIRTUAL_MEMORY, f.GROUP_SWAP,
            f.GROUP_PSS, f.GROUP_SWAP_PSS, f.GROUP_CPU, f.GROUP_MAJOR_FAULTS,
            f.GROUP_MINOR_FAULTS, f.GROUP_CONTEXT_SWITCHES, f.GROUP_READ, f.GROUP_WRITE,
            f.GROUP_OPEN_FDS, f.GROUP_WORST_FD_RATIO, f.GROUP_STATES, f.GROUP_THREADS,
            f.GROUP_OLDEST, f.PROCESS_RESIDENT_MEMORY)}
        for name, t in totals.items():
            group, c, labels = self._names[name], self._counters[name], [name]
            out[f.GROUP_PROCESSES].add_metric(labels, t.processes)
            out[f.GROUP_RESIDENT_MEMORY].add_metric(labels, t.rss)
            out[f.GROUP_VIRTUAL_MEMORY].add_metric(labels, t.vsize)
            out[f.GROUP_THREADS].add_metric(labels, t.threads)
            if t.processes:
                out[f.GROUP_OLDEST].add_metric(labels, t.oldest)
            for state, n in zip(STATES, t.states, strict=True):
                out[f.GROUP_STATES].add_metric([name, state], n)
            out[f.GROUP_CPU].add_metric([name, "user"], c[USER])
            out[f.GROUP_CPU].add_metric([name, "system"], c[SYSTEM])
            out[f.GROUP_MINOR_FAULTS].add_metric(labels, c[MINFLT])
            out[f.GROUP_MAJOR_FAULTS].add_metric(labels, c[MAJFLT])
            if group.swap:
                out[f.GROUP_SWAP].add_metric(labels, t.swap)
            if group.context_switches:
                out[f.GROUP_CONTEXT_SWITCHES].add_metric([name, "voluntary"], c[VOLUNTARY])
                out[f.GROUP_CONTEXT_SWITCHES].add_metric([name, "involuntary"], c[INVOLUNTARY])
            if group.io:
                out[f.GROUP_READ].add_metric(labels, c[READ])
                out[f.GROUP_WRITE].add_metric(labels, c[WRITE])
            if group.fds:
                out[f.GROUP_OPEN_FDS].add_metric(labels, t.fds)
                out[f.GROUP_WORST_FD_RATIO].add_metric(labels, t.worst_fd_ratio)
            if group.pss:
                out[f.GROUP_PSS].add_metric(labels, t.pss)
                out[f.GROUP_SWAP_PSS].add_metric(labels, t.swap_pss)
            if group.per_process:
                kept = t.members[: group.max_series]
                self.caps.drop("max_series", len(t.members) - len(kept))
                for p in kept:
                    out[f.PROCESS_RESIDENT_MEMORY].add_metric([name, str(p.pid)], p.rss_bytes)
        yield from out.values()


def _valid(entry: Seen | None, p: Proc) -> Seen | None:
    """entry, if it is p's membership (same start and comm)."""
    return entry if entry and entry.start == p.start_ticks and entry.comm == p.comm else None
