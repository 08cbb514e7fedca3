"""What entering a cgroup cell through the argv prefix adds to a spawn.

The controller spawns with Popen's vfork path through ``setpriv --pdeathsig KILL --``; a
cell adds ``/bin/sh -c <enter script> <cgroup.procs files> --`` in front. Rounds alternate
between the two argvs (both running /bin/true) and time, per spawn:

- Popen: the call itself, which is what blocks the controller's event loop (vfork returns
  once the first program is exec'd, so the shell's work happens after it);
- to exit: Popen until the reaped exit of /bin/true, which includes the shell's start-up,
  its cgroup.procs writes and the second exec.

Two regimes: back to back, and idle (50 ms between spawns, like a controller that restarts
now and then). They differ because a write to cgroup.procs takes the kernel's
cgroup_threadgroup_rwsem for writing, which first waits for an RCU grace period unless a
recent migration left it in its slow mode (or cgroupfs is mounted with favordynmods).

Also timed: making and removing an empty cell (create + remove), once per instance start.
Needs root and a usable cgroup backend; ``--isolation`` picks it.

    .venv/bin/python benchmarks/isolation_spawn.py [--spawns 200] [--isolation auto] [--gap 0.05]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time

from procpilot.controller.isolation import Limits, choose, kill_and_wait


def spawn(argv: list[str]) -> tuple[float, float]:
    """(seconds in Popen, seconds until reaped) for one run of argv."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv)
    returned = time.perf_counter()
    os.waitpid(proc.pid, 0)
    proc.returncode = 0  # reaped here, as the controller's reaper does
    return returned - started, time.perf_counter() - started


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.3f}"


def rounds(cell_argv: list[str], program: list[str], spawns: int, gap: float
           ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Alternate plain and entered spawns; their (Popen, to exit) times."""
    plain, entered = [], []
    for _ in range(spawns):
        plain.append(spawn(program))
        time.sleep(gap)
        entered.append(spawn([*cell_argv, *program]))
        time.sleep(gap)
    return plain, entered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=200)
    parser.add_argument("--isolation", default="auto")
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between idle spawns")
    args = parser.parse_args()
    setpriv = shutil.which("setpriv")
    program = ([setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []) + ["/bin/true"]
    backend = choose(args.isolation, f"bench-{os.getpid()}")
    cell = backend.create("spawn", Limits())
    lifecycle: list[float] = []
    try:
        results = {regime: rounds(cell.enter_argv(), program, args.spawns, gap)
                   for regime, gap in (("back to back", 0.0), ("idle", args.gap))}
        for i in range(args.spawns):
            started = time.perf_counter()
            backend.create(f"c{i}", Limits(memory=64 << 20)).remove()
            lifecycle.append(time.perf_counter() - started)
    finally:
        kill_and_wait(cell)
        cell.remove()
        backend.close()
    print(f"backend {backend.name}, {len(cell.dirs)} cgroup.procs file(s) written per spawn, "
          f"{args.spawns} spawns of each argv per regime, median ms")
    print("| regime | argv | Popen | to exit | added to exit |")
    print("|---|---|---:|---:|---:|")
    for regime, (plain, entered) in results.items():
        base = statistics.median([e for _, e in plain])
        print(f"| {regime} | setpriv /bin/true | {ms([p for p, _ in plain])} | "
              f"{ms([e for _, e in plain])} | |")
        print(f"| {regime} | enter prefix + setpriv /bin/true | {ms([p for p, _ in entered])} "
              f"| {ms([e for _, e in entered])} | "
              f"{(statistics.median([e for _, e in entered]) - base) * 1000:.3f} |")
    print(f"\ncell create + remove: {ms(lifecycle)} ms")


if __name__ == "__main__":
    main()
