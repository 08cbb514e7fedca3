"""Exit detection: the controller is a child subreaper and reaps every descendant.

One SIGCHLD handler, run by the asyncio loop (``loop.add_signal_handler``), drains
``waitpid(-1, WNOHANG)``. A pid somebody is watching gets its exit status through a future;
any other pid is an orphaned descendant (a double-forked grandchild re-parented to us because
we are a subreaper) and is only counted, so no zombie is ever left behind.

Why not asyncio's child watchers or ``Popen.wait``: they call ``waitpid`` on specific pids
and would race this loop for the same statuses. Callers must register a pid with
:meth:`Reaper.watch` in the same loop callback that forked it; the reaping callback cannot
run in between, so no exit status is missed.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from collections.abc import Callable

from procpilot.controller.states import ExitStatus

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)
# Resolved once at import: a forked child (see spawn.py) must not look symbols up.
prctl = _libc.prctl
prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
prctl.restype = ctypes.c_int


def set_child_subreaper(on: bool = True) -> None:
    """Make orphaned descendants re-parent to this process instead of to PID 1."""
    if prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")


class Reaper:
    """Reaps all children on SIGCHLD and resolves the futures of watched pids."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watched: dict[int, asyncio.Future[ExitStatus]] = {}
        self.reaped_unmanaged = 0  # descendants nobody watched (orphans we adopted)
        # Called after each round of reaping that collected an orphan (see Program drains).
        self.orphan_listeners: set[Callable[[], None]] = set()

    def install(self) -> None:
        """Become subreaper, handle SIGCHLD in the loop and reap what already exited."""
        set_child_subreaper()
        self._loop.add_signal_handler(signal.SIGCHLD, self.reap)
        self.reap()

    def uninstall(self) -> None:
        """Undo install (for embedding, e.g. tests that share a process)."""
        self._loop.remove_signal_handler(signal.SIGCHLD)
        set_child_subreaper(False)

    def watch(self, pid: int) -> asyncio.Future[ExitStatus]:
        """A future for pid's exit status; call it right after forking pid."""
        fut = self._watched.get(pid)
        if fut is None:
            fut = self._watched[pid] = self._loop.create_future()
        return fut

    @property
    def watched(self) -> int:
        return len(self._watched)

    def reap(self) -> None:
        """Collect every exited child (several exits may share one SIGCHLD)."""
        orphans = 0
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            fut = self._watched.pop(pid, None)
            if fut is None:
                orphans += 1
                log.debug("reaped orphan", extra={"fields": {"pid": pid}})
            elif not fut.done():
                fut.set_result(ExitStatus.from_wait_status(status))
        if orphans:
            self.reaped_unmanaged += orphans
            for listener in list(self.orphan_listeners):
                listener()
