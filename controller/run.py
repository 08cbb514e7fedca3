"""procpilot-run: run one command in a fresh cgroup cell with limits, then report on it.

The same backends and probing as the controller, without a controller: useful on its own
("how much memory does this job really need?") and as the smallest end-to-end use of the
isolation layer.

Signals: the command shares procpilot-run's process group, so a terminal's Ctrl-C, Ctrl-\\
and hangup reach it straight from the kernel; those (si_code SI_KERNEL) are not forwarded
again. A signal sent to procpilot-run alone (``kill PID``) is forwarded to the command's main
process. Signals are taken with sigwaitinfo (blocked, never handled asynchronously), and
the command is started by posix_spawn with an empty signal mask, so nothing is lost
between spawning and waiting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from procpilot.controller.isolation import (
    CHOICES,
    Backend,
    Cell,
    IsolationError,
    Limits,
    Usage,
    check_cores,
    choose,
    kill_and_remove,
    kill_and_wait,
)
from procpilot.controller.reaper import set_child_subreaper
from procpilot.controller.states import ExitStatus
from procpilot.core.procfs import FS
from procpilot.core.procfs.pidstat import read_stat
from procpilot.core.signals import signal_name
from procpilot.core.units import format_size, parse_duration, parse_size

PROG = "procpilot-run"
IDENTITY = "run"  # cells go under <own cgroup or --cgroup-root>/procpilot-run
USAGE_ERROR, TIMED_OUT, FAILED, NOT_EXECUTABLE, NOT_FOUND = 2, 124, 125, 126, 127
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
KILL_AGAIN_SECONDS = 0.05  # after the timeout, the cell is killed again this often
SI_KERNEL = 0x80  # si_code of a signal the kernel sent (a terminal's, to its foreground group)
_CELL = re.compile(r"run-(\d+)-(\d+)")
_CORES = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(%?)")

EPILOG = f"""\
The command runs in a new cgroup cell (under <own cgroup>/procpilot-run, or under
<--cgroup-root>/procpilot-run) with the given limits. When its main process exits, or at
the timeout, every process left in the cell is killed with SIGKILL and the cell is removed.
With --isolation none there is no cell: only the main process is killed at the timeout,
nothing else is guaranteed.

stdin, stdout and stderr are the command's own. SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to
procpilot-run are forwarded to the command; a terminal's reach it directly, once.

At the end one line goes to stderr: the exit code, the reason (exit, signal, oom_kill when
the cell's OOM-kill counter went up, timeout), peak memory (the cgroup's, which counts page
cache; without a memory cgroup the largest RSS of a reaped process, or unknown when that is
not above procpilot-run's own), CPU seconds and the backend. With --json it is one JSON
object, the last line of stderr.

Exit status: the command's, 128+N when signal N ended it; {TIMED_OUT} at the timeout (like
timeout(1)); {USAGE_ERROR} for a bad flag, a missing command, or a forced --isolation or a
--cgroup-root that cannot work here; {FAILED} when the cell could not be made or entered;
{NOT_EXECUTABLE} when the command is not executable, {NOT_FOUND} when it is not found.
"""


def parse_cores(text: str) -> float:
    """CPU cores as ``0.5`` or ``50%`` (of one core), at least MIN_CPU_CORES; ValueError
    otherwise."""
    match = _CORES.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r}: expected cores like 0.5 or a percentage like 50%")
    return check_cores(float(match.group(1)) / (100 if match.group(2) else 1))


def _argument(parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return convert


def _tasks(text: str) -> int:
    if not text.isdecimal() or int(text) < 1:
        raise ValueError(f"{text!r}: expected a whole number of tasks >= 1")
    return int(text)


def _positive_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"{text!r}: must be more than 0")
    return seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, usage=f"{PROG} [OPTIONS] -- COMMAND [ARG...]",
        description="Run a command in a fresh cgroup with limits; report how it ended and "
                    "what it used.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--memory", type=_argument(parse_size), metavar="SIZE",
        help="hard memory limit (e.g. 512MiB); beyond it the kernel OOM-kills")
    add("--memory-high", type=_argument(parse_size), metavar="SIZE",
        help="soft limit: v2 throttles and reclaims above it, v1 reclaims under pressure")
    add("--swap", type=_argument(parse_size), metavar="SIZE",
        help="swap allowed on top of --memory (v1 needs --memory for it)")
    add("--cpu", type=_argument(parse_cores), metavar="CORES",
        help="CPU limit in cores, 0.5 or 50%%")
    add("--tasks", type=_argument(_tasks), metavar="N",
        help="most processes and threads at once")
    add("--timeout", type=_argument(_positive_duration), metavar="DURATION",
        help=f"kill the whole cell after this long (e.g. 30s, 1m30s) and exit {TIMED_OUT}")
    add("--isolation", choices=CHOICES, default="auto",
        help="backend (default auto: cgroup2, else cgroup1, else cgroup2 for containment "
             "only, else none)")
    add("--cgroup-root", metavar="PATH",
        help="existing cgroup (absolute path inside the hierarchy, the same in each v1 "
             "hierarchy) to make the cell under, in PATH/procpilot-run")
    add("--json", action="store_true", help="report as one JSON object on stderr")
    add("command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]",
        help="what to run, after --")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("missing COMMAND (give it after --)")
    return args


@dataclass(frozen=True)
class Ended:
    status: ExitStatus
    timed_out: bool
    wall_seconds: float


def _start_ticks(fs: FS, pid: int | str) -> int | None:
    proc = read_stat(fs, pid)
    return None if proc is None else proc.start_ticks


def sweep(backend: Backend, fs: FS) -> None:
    """Kill and remove the cells of earlier runs whose procpilot-run is gone (SIGKILLed).

    Cell names hold the owner's pid and start time, so a live run is never touched.
    """
    for cell in backend.leftovers():
        match = _CELL.fullmatch(cell.name)
        if match and _start_ticks(fs, match.group(1)) != int(match.group(2)):
            kill_and_remove(cell, timeout=1.0)


def _reap(main: int | None) -> int | None:
    """Reap every exited child (we are a subreaper); the main process's wait status."""
    found = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == main:
            found = status


def _kill_cell_and_main(cell: Cell, main: int) -> None:
    """SIGKILL the cell and the main process. Both: the main process may not be in the cell
    yet (the enter prefix moves it there after the spawn), nor be at all without a cgroup."""
    cell.kill()
    with contextlib.suppress(ProcessLookupError):
        os.kill(main, signal.SIGKILL)


def supervise(cell: Cell, argv: list[str], timeout: float | None) -> Ended:
    """Spawn argv, forward signals, kill the cell at the timeout; wait for the main process.

    The caller has blocked FORWARDED and SIGCHLD, so every one is taken here in order.
    """
    started = time.monotonic()
    main = os.posix_spawnp(argv[0], argv, os.environ, setsigmask=(),
                           setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))  # Python ignores those
    deadline = None if timeout is None else started + timeout
    timed_out = False
    waited = {*FORWARDED, signal.SIGCHLD}
    while True:
        status = _reap(main)
        if status is not None:
            return Ended(ExitStatus.from_wait_status(status), timed_out,
                         time.monotonic() - started)
        if deadline is not None and time.monotonic() >= deadline:
            timed_out = True
            _kill_cell_and_main(cell, main)
            deadline = time.monotonic() + KILL_AGAIN_SECONDS  # until main is reaped
        info: signal.struct_siginfo | None
        if deadline is None:
            info = signal.sigwaitinfo(waited)
        else:
            info = signal.sigtimedwait(waited, max(deadline - time.monotonic(), 0.0))
        if info and info.si_signo != signal.SIGCHLD and info.si_code != SI_KERNEL:
            with contextlib.suppress(ProcessLookupError):
                os.kill(main, info.si_signo)


def describe(ended: Ended, usage: Usage, *, oom_kills: tuple[int | None, int | None],
             backend: str, enforced: frozenset[str], requested: frozenset[str]
             ) -> dict[str, Any]:
    """The report: how the command ended and what the cell used."""
    before, after = oom_kills
    oom = after is not None and before is not None and after > before
    reason = ("timeout" if ended.timed_out else "oom_kill" if oom
              else "signal" if ended.status.signal is not None else "exit")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak, peak_source = usage.memory_peak_bytes, "cgroup"
    if peak is None:
        peak, peak_source = children.ru_maxrss * 1024, "rusage"
        # The command starts as a vfork of this process and exec carries the old memory's
        # peak over: a figure not above our own peak may be ours, so it says nothing.
        if children.ru_maxrss <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss:
            peak, peak_source = None, "none"
    cpu, cpu_source = usage.cpu_seconds, "cgroup"
    if cpu is None:
        cpu, cpu_source = children.ru_utime + children.ru_stime, "rusage"
    return {
        "exit_code": TIMED_OUT if ended.timed_out else ended.status.shell_code,
        "reason": reason,
        "signal": None if (sig := ended.status.signal) is None else signal_name(sig),
        "oom_kills": None if after is None else after - (before or 0),
        "peak_memory_bytes": peak,
        "peak_memory_source": peak_source,
        "cpu_seconds": round(cpu, 6),
        "cpu_seconds_source": cpu_source,
        "cpu_throttled_seconds": usage.cpu_throttled_seconds,
        "wall_seconds": round(ended.wall_seconds, 6),
        "backend": backend,
        "kernel_enforced": sorted(enforced),
        "not_enforced": sorted(requested - enforced),
    }


def format_text(report: dict[str, Any]) -> str:
    parts = [f"exit_code={report['exit_code']}", f"reason={report['reason']}"]
    if report["signal"]:
        parts.append(f"signal={report['signal']}")
    parts += [
        "peak_memory=" + (format_size(report["peak_memory_bytes"])
                          if report["peak_memory_bytes"] is not None else "unknown"),
        f"peak_memory_source={report['peak_memory_source']}",
        f"cpu_seconds={report['cpu_seconds']:.3f}",
        f"wall_seconds={report['wall_seconds']:.3f}",
        f"backend={report['backend']}",
    ]
    if report["kernel_enforced"]:
        parts.append("kernel_enforced=" + ",".join(report["kernel_enforced"]))
    return f"{PROG}: " + " ".join(parts)


def _check_command(command: str) -> int:
    """0 when command can run, else its exit status (said here, before any cell exists).

    The exec itself looks the command up again, so its argv[0] stays as given.
    """
    found = shutil.which(command) if "/" not in command else command
    if found is None or not os.path.exists(found):
        print(f"{PROG}: {command}: command not found", file=sys.stderr)
        return NOT_FOUND
    if os.path.isdir(found) or not os.access(found, os.X_OK):
        print(f"{PROG}: {command}: not executable", file=sys.stderr)
        return NOT_EXECUTABLE
    return 0


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(memory=args.memory, memory_high=args.memory_high, swap=args.swap,
                  cpu=args.cpu, tasks=args.tasks)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limits = _limits(args)
    try:
        fs = FS.at()
        backend = choose(args.isolation, IDENTITY, root=args.cgroup_root, fs=fs)
    except (IsolationError, OSError) as e:
        print(f"{PROG}: --isolation {args.isolation}: {e}", file=sys.stderr)
        return USAGE_ERROR
    unusable = _check_command(args.command[0])
    if unusable:
        return unusable
    sweep(backend, fs)
    try:
        cell = backend.create(f"run-{os.getpid()}-{_start_ticks(fs, 'self') or 0}", limits)
    except IsolationError as e:
        print(f"{PROG}: cannot make the cell: {e}", file=sys.stderr)
        return FAILED
    missing = limits.kinds() - cell.enforced
    if missing:
        print(f"{PROG}: warning: {backend.name} cannot enforce the "
              f"{', '.join(sorted(missing))} limit here; running without", file=sys.stderr)
    set_child_subreaper()
    signal.pthread_sigmask(signal.SIG_BLOCK, {*FORWARDED, signal.SIGCHLD})
    try:
        before = cell.oom_kills()
        ended = supervise(cell, [*cell.enter_argv(), *args.command], args.timeout)
        kill_and_wait(cell)  # what the main process left behind
        _reap(None)
        report = describe(ended, cell.usage(), oom_kills=(before, cell.oom_kills()),
                          backend=backend.name, enforced=cell.enforced,
                          requested=limits.kinds())
    finally:
        if not kill_and_remove(cell):
            print(f"{PROG}: warning: could not remove {', '.join(cell.dirs)}", file=sys.stderr)
    print(json.dumps(report) if args.json else format_text(report), file=sys.stderr)
    return int(report["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
