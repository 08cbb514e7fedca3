"""Backends on this machine's real cgroups, each under a root of its own that is swept
(every cell killed and removed, then the root) even when a test fails."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator

import pytest

from procpilot.controller.isolation import Backend, IsolationError, choose, kill_and_wait


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


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll until check() is true; fail after timeout (a safety net, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """True for a running process; False when gone or a zombie (dead, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b") ")[2][:1] != b"Z"
    except OSError:
        return False
