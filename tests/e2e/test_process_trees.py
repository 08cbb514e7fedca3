"""The controller's subtree walk against real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from procpilot.core.procfs import FS, has_children_files, subtree


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
