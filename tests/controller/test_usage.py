"""Process-tree membership and monotonic CPU accounting."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from procpilot.controller.usage import CpuMeter, tree_members
from procpilot.core.procfs import FS, Proc, has_children_files, subtree


def proc(pid: int, ppid: int, pgrp: int, *, utime: float = 0.0, start: int = 1,
         rss: int = 4096) -> Proc:
    return Proc(pid=pid, comm="x", state="S", ppid=ppid, pgrp=pgrp, session=1, flags=0,
                utime=utime, stime=0.0, num_threads=1, start_ticks=start, start_time=0.0,
                rss_bytes=rss, key=(pid, start))


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


def test_cpu_meter_is_monotonic_across_exits_and_pid_reuse() -> None:
    meter = CpuMeter()
    meter.add([proc(1, 0, 1, utime=1.0), proc(2, 0, 1, utime=2.0)])
    assert meter.user == 3.0
    meter.add([proc(1, 0, 1, utime=1.5)])  # pid 2 exited
    assert meter.user == 3.5
    meter.add([proc(1, 0, 1, utime=1.5), proc(2, 0, 1, utime=0.25, start=99)])  # pid reused
    assert meter.user == 3.75


@pytest.mark.skipif(not has_children_files(FS.at()),
                    reason="kernel without /proc/*/task/*/children")
def test_subtree_finds_every_descendant(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    top = subprocess.Popen(["sh", "-c", f"sleep 100 & (sleep 100 & echo $! >> {pidfile}; "
                                        f"wait) & echo $! >> {pidfile}; wait"],
                           process_group=0)
    try:
        deadline = time.monotonic() + 20
        while not (pidfile.exists() and len(pidfile.read_text().split()) == 2):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        found = subtree(FS.at(), os.getpid())
        assert top.pid in found
        for pid in map(int, pidfile.read_text().split()):
            assert pid in found
        assert os.getpid() not in found
    finally:
        os.killpg(top.pid, signal.SIGKILL)
        top.wait()
