"""Backends on this machine's real cgroups, each under a root of its own that is swept
(every cell killed and removed, then the root) even when a test fails."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

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
