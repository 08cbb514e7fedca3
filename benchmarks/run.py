"""`./dev bench [NAME ...]`: run the benchmarks one after another, printing each one's table.

Names: exporter (scrape time and RSS against process-exporter and node_exporter),
restart (crash-to-restart latency against supervisord), idle-cpu (controller CPU with 200
idle instances), autoscale (the pool policy simulated against a step rule),
ctl-startup (procpilotctl --help against a bare interpreter start), memory-limit (peak memory
of a fast allocator, polled limit against the kernel's), isolation-spawn (what entering a
cgroup adds to a spawn), web (both services' HTTP server under a connection flood and
malformed requests).
With no name, all run (about 10 minutes on a 2-core machine).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "exporter": ["exporter_scrape.py", "--sizes", "2000,10000", "--rounds", "15",
                 "--exits-per-second", "1000"],
    "restart": ["controller_restart.py"],
    "idle-cpu": ["controller_idle_cpu.py", "--seconds", "60"],
    "autoscale": ["autoscale_sim.py"],
    "ctl-startup": ["ctl_startup.py"],
    "memory-limit": ["memory_limit.py"],
    "isolation-spawn": ["isolation_spawn.py"],
    "web": ["web_flood.py"],
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    failed = 0
    for name in names or list(BENCHMARKS):
        script, *args = BENCHMARKS[name]
        command = [sys.executable, str(HERE / script), *args]
        print(f"\n### {name}: {' '.join(['.venv/bin/python', f'benchmarks/{script}', *args])}",
              flush=True)
        failed += subprocess.run(command, check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
