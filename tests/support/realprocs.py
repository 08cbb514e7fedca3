"""Real processes in the states the exporter reports: zombies, orphans, named sleepers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.service import wait_for


def _python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return ""


@contextmanager
def zombie_parent(name: str, zombies: int) -> Iterator[int]:
    """A parent called `name` holding `zombies` unreaped children; yields the parent pid."""
    proc = _python(f"""
        import os, signal
        with open("/proc/self/comm", "w") as f:
            f.write({name!r})
        pids = []
        for _ in range({zombies}):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            pids.append(pid)
        print(*pids, flush=True)
        signal.pause()
    """)
    try:
        assert proc.stdout is not None
        children = [int(p) for p in proc.stdout.readline().split()]
        wait_for(lambda: all(_state(p) == "Z" for p in children), what="zombies")
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def orphans(name: str, count: int, user: str | None = None) -> Iterator[list[int]]:
    """`count` processes called `name` whose session leader forked them and exited."""
    setuid = f"import pwd; os.setuid(pwd.getpwnam({user!r}).pw_uid)" if user else ""
    proc = _python(f"""
        import os, signal
        os.setsid()
        pids = []
        for _ in range({count}):
            pid = os.fork()
            if pid == 0:
                with open("/proc/self/comm", "w") as f:
                    f.write({name!r})
                {setuid}
                signal.pause()
            pids.append(pid)
        print(*pids, flush=True)
        os._exit(0)
    """)
    assert proc.stdout is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    proc.wait()
    try:
        wait_for(lambda: all(os.getsid(p) == proc.pid for p in pids), what="orphans")
        yield pids
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def detached_daemon(name: str) -> Iterator[int]:
    """A process that detached on purpose: setsid() in a child whose parent then exits."""
    proc = _python(f"""
        import os, signal
        pid = os.fork()
        if pid == 0:
            os.setsid()
            with open("/proc/self/comm", "w") as f:
                f.write({name!r})
            signal.pause()
        print(pid, flush=True)
        os._exit(0)
    """)
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    proc.wait()
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGKILL)


@contextmanager
def sleepers(name: str, count: int, burn: bool = False) -> Iterator[list[subprocess.Popen[str]]]:
    """`count` processes called `name`; with burn=True they spin on the CPU."""
    body = "while True: pass" if burn else "signal.pause()"
    procs = [
        _python(f"""
            import signal
            with open("/proc/self/comm", "w") as f:
                f.write({name!r})
            print("ready", flush=True)
            {body}
        """)
        for _ in range(count)
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            p.stdout.readline()
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()
