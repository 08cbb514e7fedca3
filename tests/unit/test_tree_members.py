"""Which processes belong to an instance: descendants, and orphans that kept its group."""

from __future__ import annotations

from procpilot.controller.usage import tree_members
from procpilot.core.procfs import Proc


def proc(pid: int, ppid: int, pgrp: int, *, utime: float = 0.0, start: int = 1,
         rss: int = 4096) -> Proc:
    return Proc(pid=pid, comm="x", state="S", ppid=ppid, pgrp=pgrp, session=1, flags=0,
                minflt=0, majflt=0, utime=utime, stime=0.0, num_threads=1, start_ticks=start,
                start_time=0.0, vsize_bytes=0, rss_bytes=rss, key=(pid, start))


def test_members_are_descendants_and_group_orphans() -> None:
    ctl = 100
    procs = {p.pid: p for p in [
        proc(10, ctl, 10),   # instance A main
        proc(11, 10, 10),    # its child
        proc(12, 11, 12),    # grandchild in its own group: still a descendant
        proc(13, ctl, 10),   # double-forked, re-parented to the controller, kept A's group
        proc(14, 13, 14),    # and its child
        proc(20, ctl, 20),   # instance B
        proc(21, ctl, 21),   # unrelated orphan
    ]}
    members = tree_members(procs, [10, 20, 30])
    assert sorted(p.pid for p in members[10]) == [10, 11, 12, 13, 14]
    assert [p.pid for p in members[20]] == [20]
    assert members[30] == []  # already gone
