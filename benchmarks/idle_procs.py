"""Many idle processes, cheaply, and gone again for sure.

`IdleProcesses(n)` starts a few parent interpreters (`_idle_parent.py`), each of
which forks up to `per_parent` children. A forked child shares almost all of its memory
with its parent, so an idle child costs about a quarter of a megabyte (mostly page tables
and a kernel stack) instead of the ~10 MB of a fresh interpreter, and forking is fast.

Every parent and child blocks reading the same pipe, whose only write end this process
holds. Closing it (or this process dying in any way, even by SIGKILL) makes every read
return end-of-file, so all of them exit on their own; parents reap their children, we
reap the parents. Each parent gets its own process group so whatever is left after a
grace period can be killed by group, and teardown checks that nothing survived.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from types import TracebackType

from _common import signal_group

_PARENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_idle_parent.py")


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise OSError("no MemAvailable in /proc/meminfo")


def _group_members(pgids: set[int]) -> list[int]:
    """Live (not zombie) pids whose process group is one of `pgids`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if fields[0] != b"Z" and int(fields[2]) in pgids:
            found.append(int(name))
    return found


class IdleProcesses:
    """Context manager holding `count` idle processes (parents included) until exit."""

    def __init__(self, count: int, per_parent: int = 1000) -> None:
        self.count = count
        self.per_parent = per_parent
        self.parents: list[subprocess.Popen[bytes]] = []
        self.spawn_seconds = 0.0
        self.memory_bytes = 0  # drop in MemAvailable while they exist

    def __enter__(self) -> IdleProcesses:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        before = _available_bytes()
        started = time.monotonic()
        left = self.count
        while left > 0:
            parent_and_children = min(left, self.per_parent + 1)
            self.parents.append(
                subprocess.Popen(
                    # -I -S: no site imports, so the forked children share a small heap.
                    [sys.executable, "-I", "-S", _PARENT, str(parent_and_children - 1)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    start_new_session=True,
                )
            )
            left -= parent_and_children
        for parent in self.parents:
            assert parent.stdout is not None
            if parent.stdout.readline() != b"ready\n":
                raise RuntimeError(f"idle parent {parent.pid} failed (exit {parent.poll()})")
        self.spawn_seconds = time.monotonic() - started
        time.sleep(0.5)  # let MemAvailable settle
        self.memory_bytes = before - _available_bytes()

    def close(self, grace: float = 30.0) -> None:
        """End every idle process; raise if any survives."""
        for parent in self.parents:
            if parent.stdin is not None:
                parent.stdin.close()  # EOF for parent and children alike
        deadline = time.monotonic() + grace
        for parent in self.parents:
            with contextlib.suppress(subprocess.TimeoutExpired):
                parent.wait(max(deadline - time.monotonic(), 0.1))
        pgids = {p.pid for p in self.parents}
        for pgid in pgids:
            signal_group(pgid, signal.SIGKILL)
        for parent in self.parents:
            parent.wait()
            if parent.stdout is not None:
                parent.stdout.close()
        self.parents = []
        left = _wait_empty(pgids, timeout=10.0)
        if left:
            raise RuntimeError(f"{len(left)} idle processes survived teardown: {left[:10]}")


def _wait_empty(pgids: set[int], timeout: float) -> list[int]:
    # Children killed after their parent died are init's to reap; as zombies they hold
    # nothing but a pid, so they do not count as survivors.
    deadline = time.monotonic() + timeout
    while (left := _group_members(pgids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
