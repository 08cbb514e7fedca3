"""Start-up time of `procpilotctl --help` against a bare interpreter start.

procpilotctl is a socket client run by hand and from scripts, so its start-up is most of
what it costs. Each command runs --runs times after one warm-up run, which writes the
bytecode caches a normal install has (PYTHONDONTWRITEBYTECODE is cleared for this); the
medians and their ratio are printed. Target: within 4x a bare `python -c pass`.

    .venv/bin/python benchmarks/ctl_startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CTL = Path(sys.executable).with_name("procpilotctl")
TARGET_RATIO = 4.0


def median_seconds(argv: list[str], runs: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
    ctl = median_seconds([str(CTL), "--help"], args.runs)
    print(f"| command | median | vs bare start |\n|---|---|---|\n"
          f"| `python -c pass` | {bare * 1000:.1f} ms | 1.00x |\n"
          f"| `procpilotctl --help` | {ctl * 1000:.1f} ms | {ctl / bare:.2f}x "
          f"(target {TARGET_RATIO:.0f}x) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
