"""Credit processes that ended between scrapes (reported by taskstats) to their groups.

For each ended process, by what the scrapes knew of it:

- seen by a scrape (same pid, start within a second; memberships of processes that went
  away are kept for a minute, and at least until the next scrape, across reloads too): its
  group is the one it had, if the config still has that name; it adds what it used after
  the last observation. CPU comes from the scheduler's exact runtime when the kernel gives
  it (the clock /proc/<pid>/stat is scaled to, so a long life of tick sampling does not
  leak into the remainder), else from the tick-sampled times; the other counters from the
  record's totals;
- started after the newest scrape whose memberships are forgotten, and not seen: no scrape
  counted any of it, so it adds all of it, tick-sampled (the exact runtime misses the last
  time slice, most of a short process's life). Its group is matched by comm and user (exe
  and cmdline are gone; see matcher.py), else, with children: true, its parent's: a
  process a scrape saw, or another ended process of the same batch;
- otherwise a scrape may have counted part of it and that is forgotten: it is left out
  and counted as unattributed, so nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, NamedTuple, Protocol

from prometheus_client.metrics_core import Metric

from procpilot.core.cpu import grown
from procpilot.core.procfs import FS, Snapshot
from procpilot.exporter import families
from procpilot.exporter.collectors.matcher import Hit, Matcher
from procpilot.exporter.exits import START_SLACK, Batch, ProcessExit, boot_offset

if TYPE_CHECKING:
    from procpilot.exporter.collectors.groups import Seen

MAX_DEPTH = 64  # ended parents followed to find a group
RETENTION = 60.0  # seconds the membership of a process that went away is kept


class Members(Protocol):
    """What crediting needs of the groups collector."""

    matcher: Matcher
    inherit: bool

    def known(self, hit: Hit, make: bool = True) -> bool: ...

    def last_values(self, key: tuple[int, int]) -> tuple[float, ...] | None: ...


class _Gone(NamedTuple):
    """A process a scrape saw that has gone away."""

    seen: Seen
    at: float  # the snapshot that saw it last
    values: tuple[float, ...] | None  # its counters then


class _Batch(NamedTuple):
    """One scrape's ended processes, and where to look up their parents."""

    by_pid: dict[int, ProcessExit]
    memo: dict[int, Hit | None]  # groups already found, by pid
    seen: dict[int, Seen]  # this scrape's memberships
    members: Members
    snap: Snapshot


def whole(e: ProcessExit) -> list[float]:
    """All an ended process used, in the groups' counter order."""
    return grown((e.user, e.system, e.minflt, e.majflt, e.nvcsw, e.nivcsw, e.read_bytes,
                  e.write_bytes), None)


def remainder(e: ProcessExit, last: tuple[float, ...] | None) -> list[float]:
    """What an ended process used after the observation ``last`` (all of it when None)."""
    totals = (e.user, e.system, e.minflt, e.majflt, e.nvcsw, e.nivcsw, e.read_bytes,
              e.write_bytes)
    rest = grown(totals, last)
    if last is not None and e.runtime > 0:
        extra = max(e.runtime - last[0] - last[1], 0.0)
        sampled = e.user + e.system
        user_share = e.user / sampled if sampled > 0 else 1.0
        rest[0], rest[1] = extra * user_share, extra * (1 - user_share)
    return rest


@dataclass
class ExitCounts:
    """What became of the exit records. These are the exporter's own metrics, exported with
    the others after the collectors' (so max_scrape_series never cuts them)."""

    results: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(families.EXIT_RESULTS, 0))
    lost: dict[str, int] = field(default_factory=lambda: dict.fromkeys(families.EXIT_LOSSES, 0))

    def metrics(self) -> Iterator[Metric]:
        exits = families.TASKSTATS_EXITS.new()
        for result, n in self.results.items():
            exits.add_metric([result], n)
        lost = families.TASKSTATS_LOST.new()
        for reason, n in self.lost.items():
            lost.add_metric([reason], n)
        yield from (exits, lost)


class Credit:
    """Memberships of processes that went away; one per groups collector, counting into
    the exporter's ExitCounts."""

    def __init__(self, counts: ExitCounts) -> None:
        self.counts = counts
        self._gone: dict[int, _Gone] = {}  # by pid
        # Times of snapshots, in seconds since boot like the exits' start times (the wall
        # clock may be stepped between scrapes; see ProcessExit).
        self._last_at = float("-inf")  # the previous scrape's snapshot
        self._forgotten_at = float("-inf")  # newest sighting no longer remembered

    def memberships_moved(self, old: dict[int, Seen], new: dict[int, Seen], taken_at: float,
                          members: Members) -> None:
        """A scrape's memberships ``new`` (its snapshot taken at the wall-clock time
        ``taken_at``) replace ``old``: remember the processes of old that are gone (or whose
        pid another process took) as last seen at the previous scrape, with their counters,
        and forget what was last seen before both the retention time and that scrape."""
        taken_at -= boot_offset()
        for pid, entry in old.items():
            now = new.get(pid)
            if now is None or now.start != entry.start:
                values = members.last_values((pid, entry.start))
                self._gone[pid] = _Gone(entry, self._last_at, values)
        keep_after = min(taken_at - RETENTION, self._last_at)
        stale = [pid for pid, gone in self._gone.items() if gone.at < keep_after]
        for pid in stale:
            self._forgotten_at = max(self._forgotten_at, self._gone.pop(pid).at)
        self._last_at = taken_at

    def _seen_before(self, e: ProcessExit, seen: dict[int, Seen], members: Members,
                     fs: FS) -> tuple[Seen, tuple[float, ...] | None] | None:
        """The membership a scrape saw the ended process with, and its counters then."""

        def same(entry: Seen) -> bool:
            return abs(entry.start / fs.ticks - e.start) <= START_SLACK  # since boot

        entry = seen.get(e.tgid)
        if entry is not None and same(entry):
            return entry, members.last_values((e.tgid, entry.start))
        gone = self._gone.get(e.tgid)
        if gone is not None and same(gone.seen):
            return gone.seen, gone.values
        return None

    def exits(self, batch: Batch, snap: Snapshot, seen: dict[int, Seen],
              members: Members) -> Iterator[tuple[Hit, list[float]]]:
        """(group, counters to add) for each ended process that belongs to a group."""
        self.counts.lost["socket"] += batch.lost_socket
        self.counts.lost["capacity"] += batch.lost_capacity
        lookup = _Batch({e.tgid: e for e in batch.exits}, {}, seen, members, snap)
        for e in batch.exits:
            known = self._seen_before(e, seen, members, snap.reader.fs)
            make = known is None  # a name a scrape made is kept only while the config has it
            if known is not None:
                hit = known[0].hit
                values = remainder(e, known[1])
            elif e.start > self._forgotten_at + START_SLACK:
                hit = self._match(e, lookup)
                values = whole(e)
            else:
                self.counts.results["unattributed"] += 1
                continue
            # A group the config no longer has, or one over max_groups, takes nothing.
            if hit is not None and members.known(hit, make):
                self.counts.results["grouped"] += 1
                yield hit, values
            else:
                self.counts.results["ungrouped"] += 1

    def _match(self, e: ProcessExit, batch: _Batch) -> Hit | None:
        """The group of an ended process no scrape saw: its own by comm and user, else
        (children: true) its parent's, the parent being a process a scrape saw or another
        ended process of this batch (a parent outlives its children's exits, or they would
        have been re-parented)."""
        memo, user_name = batch.memo, batch.snap.reader.user_name
        chain: list[ProcessExit] = []
        above: Hit | None = None  # the group of the nearest ancestor resolved
        node: ProcessExit | None = e
        while node is not None and len(chain) < MAX_DEPTH:
            if node.tgid in memo:
                above = memo[node.tgid]
                break
            own = batch.members.matcher.match_exit(node.comm, partial(user_name, node.uid))
            if own is not None:
                memo[node.tgid] = above = own
                break
            chain.append(node)
            if not batch.members.inherit:
                break
            parent = batch.seen.get(node.ppid) or self._remembered(node.ppid, batch.members)
            if parent is not None:
                above = parent.hit
                break
            node = batch.by_pid.get(node.ppid)
        for node in reversed(chain):
            above = above if above is not None and above.group.children else None
            memo[node.tgid] = above
        return memo.get(e.tgid)

    def _remembered(self, pid: int, members: Members) -> Seen | None:
        """The membership of a process that went away, which may be from before a reload:
        its group only while the config still has that name (it is not made again)."""
        gone = self._gone.get(pid)
        if gone is None:
            return None
        hit = gone.seen.hit
        if hit is not None and not members.known(hit, make=False):
            return gone.seen._replace(hit=None)
        return gone.seen
