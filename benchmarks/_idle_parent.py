"""One parent of idle processes; started by `idle_procs.IdleProcesses`, not by people.

Usage: python -I -S _idle_parent.py COUNT. Forks COUNT children that block reading stdin
(a pipe whose write end only the benchmark holds), prints "ready", then does the same and
reaps the children once end-of-file arrives.

Imports nothing but os and sys on purpose: with `subprocess` (and so `threading`) loaded,
fork's after-fork hooks touch enough of the heap that each child costs ~600 KiB instead
of ~170 KiB, and forking gets twice as slow.
"""

import os
import sys

COMM = "ppbench-idle"  # inherited by every child: one recognisable name


def main(count: int) -> None:
    with open("/proc/self/comm", "w") as f:
        f.write(COMM)
    for _ in range(count):
        if os.fork() == 0:
            try:
                os.read(0, 1)
            finally:
                os._exit(0)
    os.write(1, b"ready\n")
    os.read(0, 1)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return


if __name__ == "__main__":
    main(int(sys.argv[1]))
