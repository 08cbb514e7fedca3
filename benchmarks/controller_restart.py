"""Crash-to-restart latency: procpilot-controller (in a cgroup per process, and with
isolation none) against Debian's supervisord.

The supervised program is one bash line that appends "start <time>" as soon as it runs and
"end <time>" right before it exits 1 (bash's $EPOCHREALTIME: CLOCK_REALTIME in microseconds,
no fork). The latency of one restart is the next "start" minus the previous "end": exit
detection, the supervisor's decision, fork and exec, and bash's own start-up, the same for
both supervisors. Both run with no restart delay and no give-up limit.

    .venv/bin/python benchmarks/controller_restart.py [--restarts 300] [--supervisord-restarts 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import percentile

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = 'echo "start $EPOCHREALTIME" >> {out}; echo "end $EPOCHREALTIME" >> {out}; exit 1'


def latencies(out: Path) -> list[float]:
    """Seconds from each "end" to the following "start"."""
    result = []
    last_end = None
    for line in out.read_text().splitlines():
        kind, _, stamp = line.partition(" ")
        if kind == "end":
            last_end = float(stamp)
        elif kind == "start" and last_end is not None:
            result.append(float(stamp) - last_end)
            last_end = None
    return result


def wait_for_lines(out: Path, restarts: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().count("start") > restarts:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"supervisor exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError("not enough restarts within 300 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_procpilot(tmp: Path, restarts: int, isolation: str) -> list[float]:
    out = tmp / f"procpilot-{isolation}.times"
    config = tmp / "procpilot.yaml"
    command = ["/bin/bash", "--norc", "-c", PROGRAM.format(out=out)]
    config.write_text(
        f"isolation: {{backend: {isolation}}}\n"
        "programs:\n"
        "  crash:\n"
        f"    command: {command!r}\n"
        "    start_seconds: 0\n"
        "    restart: {delay: 0, jitter: 0, max_restarts: 1000000000, window: 1s}\n"
    )
    exe = ROOT / ".venv/bin/procpilot-controller"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "procpilot.controller.cli"]
    proc = subprocess.Popen(
        [*cmd, "--config.file", str(config), "--control.socket", str(tmp / f"{isolation}.sock"),
         "--web.listen-address", "127.0.0.1:0", "--log.level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_lines(out, restarts, proc)
    finally:
        stop(proc)
    return latencies(out)[:restarts]


def run_supervisord(tmp: Path, restarts: int) -> list[float]:
    out = tmp / "supervisord.times"
    config = tmp / "supervisord.conf"
    config.write_text(
        "[supervisord]\n"
        f"nodaemon=true\nlogfile={tmp}/supervisord.log\npidfile={tmp}/supervisord.pid\n"
        "loglevel=error\n"
        + ("user=root\n" if os.geteuid() == 0 else "")
        + "[program:crash]\n"
        f"command=/bin/bash --norc -c '{PROGRAM.format(out=out)}'\n"
        "autorestart=true\nstartsecs=0\nstartretries=1000000000\n"
        f"stdout_logfile={tmp}/crash.log\nredirect_stderr=true\n"
    )
    proc = subprocess.Popen(["supervisord", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_lines(out, restarts, proc)
    finally:
        stop(proc)
    return latencies(out)[:restarts]


def row(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"| {name} | {len(ms)} | {statistics.median(ms):.2f} | {percentile(ms, 90):.2f} | "
            f"{percentile(ms, 99):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=300)
    # supervisord restarts at most once per turn of its 1 s main loop: fewer samples suffice.
    parser.add_argument("--supervisord-restarts", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="procpilot-bench-") as tmp:
        cells = run_procpilot(Path(tmp), args.restarts, "auto")
        ours = run_procpilot(Path(tmp), args.restarts, "none")
        theirs = []
        if shutil.which("supervisord") and args.supervisord_restarts > 0:
            theirs = run_supervisord(Path(tmp), args.supervisord_restarts)
    print("| supervisor | restarts | median ms | p90 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    print(row("procpilot-controller, a cgroup per instance process", cells))
    print(row("procpilot-controller, isolation none", ours))
    if theirs:
        print(row("supervisord " + supervisord_version(), theirs))
        ratio = statistics.median(theirs) / statistics.median(ours)
        print(f"\nmedian ratio supervisord / procpilot: {ratio:.1f}x")
    else:
        print("\n(supervisord not installed or not asked for: no comparison)")


def supervisord_version() -> str:
    try:
        return subprocess.run(["supervisord", "--version"], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


if __name__ == "__main__":
    main()
