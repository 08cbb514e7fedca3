"""Processes that start and end at a steady rate; started by exporter_scrape.py, not people.

Usage: python -I -S _exit_burst.py RATE SECONDS BURN_MS. Forks RATE children a second for
SECONDS; each names itself ppbench-exit (this parent is ppbench-burst, in no group) and
burns about BURN_MS of CPU before it exits. Reaps them, then prints one line: the number of
children, the CPU seconds they used as getrusage(RUSAGE_CHILDREN) counts it, and the wall
seconds.

Imports nothing but os, resource, sys and time, so forking stays cheap (see _idle_parent.py).
"""

import os
import resource
import sys
import time


def name(comm: str) -> None:
    with open("/proc/self/comm", "w") as f:
        f.write(comm)


def reap(block: bool) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(rate: float, seconds: float, burn_ms: float) -> None:
    name("ppbench-burst")
    count = int(rate * seconds)
    burn = burn_ms / 1000
    started = time.monotonic()
    for i in range(count):
        delay = started + i / rate - time.monotonic()  # child i starts at i / rate
        if delay > 0:
            time.sleep(delay)
        if os.fork() == 0:
            name("ppbench-exit")
            begin = time.process_time()
            while time.process_time() - begin < burn:
                pass
            os._exit(0)
        reap(block=False)
    reap(block=True)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(count, used.ru_utime + used.ru_stime, time.monotonic() - started, flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
