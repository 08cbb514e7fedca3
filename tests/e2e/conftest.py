"""Backends on this machine's real cgroups, each under a root of its own that is swept
(every cell killed and removed, then the root) even when a test fails."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import pytest

from procpilot.controller.isolation import Backend, IsolationError, choose, kill_and_wait
from procpilot.controller.isolation.base import kill_in_rounds, remove_dirs, subtree_procs
from procpilot.core import cgroupfs
from procpilot.core.procfs import FS
from procpilot.core.procfs.cgroups import read_mounts


def _sweep(kind: str, identity: str) -> None:
    # A second backend of the same identity sees every cell as a leftover.
    backend = choose(kind, identity)
    for cell in backend.leftovers():
        kill_and_wait(cell)
        cell.remove()
    backend.close()


def _backend(kind: str) -> Iterator[Backend]:
    if os.geteuid() != 0:
        pytest.skip("creating cgroups needs root")
    identity = f"test-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        backend = choose(kind, identity)
    except IsolationError as e:
        pytest.skip(f"{kind} is not usable here: {e}")
    try:
        yield backend
    finally:
        _sweep(kind, identity)


@pytest.fixture
def cgroup1() -> Iterator[Backend]:
    yield from _backend("cgroup1")


@pytest.fixture
def cgroup2() -> Iterator[Backend]:
    yield from _backend("cgroup2")


def _mounted_dirs(cgroup: str) -> list[str]:
    """cgroup's directory in the cgroup2 mount and in each mounted v1 hierarchy."""
    found = cgroupfs.cgroup_hierarchies(read_mounts(FS.at()))
    mounts = {*found.v1.values(), *([found.unified] if found.unified else [])}
    return sorted(d for m in mounts if (d := cgroupfs.cgroup_dir(m, cgroup)) is not None)


@pytest.fixture
def explicit_root() -> Iterator[str]:
    """A fresh cgroup in every hierarchy, as an operator's isolation.root; at the end
    everything in it is killed and it is removed, sub-cgroups first."""
    if os.geteuid() != 0:
        pytest.skip("creating cgroups needs root")
    cgroup = f"/procpilot-test-root-{os.getpid()}-{secrets.token_hex(3)}"
    dirs = _mounted_dirs(cgroup)
    try:
        for directory in dirs:
            os.mkdir(directory)
    except OSError as e:
        remove_dirs(dirs)
        pytest.skip(f"cannot make {cgroup}: {e}")
    try:
        yield cgroup
    finally:
        _empty_and_remove(dirs)


def _empty_and_remove(dirs: list[str]) -> None:
    """Kill what is in dirs (sub-cgroups too) until they can be removed, sub-cgroups first."""
    def listed() -> set[int]:
        return {pid for d in dirs for pid in subtree_procs(d)}

    for _ in range(100):
        kill_in_rounds(listed, lambda frozen: None)
        if remove_dirs(dirs):
            return
        time.sleep(0.05)
