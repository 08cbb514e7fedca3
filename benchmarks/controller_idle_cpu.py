"""Controller CPU while it supervises many idle instances with 1 s memory checks.

Starts procpilot-controller with one program of N instances (``sleep``) that have a memory
limit and ``check_interval: 1s``, once with ``isolation: none`` (every second one procfs pass
measures all N process trees) and once with the cgroup backend this machine has (the
kernel keeps the limit; each instance's cgroup is read when metrics are scraped). Both are
scraped every 15 s during the window, as Prometheus would. Once all instances run, it reads
the controller's utime+stime from /proc over the window and reports it as a share of one
core. The same run with supervisord (which does no memory checks) is printed alongside for
scale when it is installed.

    .venv/bin/python benchmarks/controller_idle_cpu.py [--instances 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import cpu_seconds, free_port, scrape

ROOT = Path(__file__).resolve().parent.parent


def status(sock: Path) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(str(sock))
        s.sendall(b'{"cmd": "status"}\n')
        answer: dict[str, object] = json.loads(s.makefile("rb").readline())
    return answer


def running_instances(sock: Path) -> int:
    try:
        answer = status(sock)
    except OSError:
        return 0
    programs = answer["result"]["programs"]  # type: ignore[index]
    return sum(i["state"] == "running" for p in programs for i in p["instances"])


def children(pid: int) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rindex(b")") + 2 :].split()[1]) == pid:
                count += 1
    return count


SCRAPE_EVERY = 15.0


def measure(pid: int, seconds: float, port: int | None = None) -> float:
    """Share of one core the process used over the window (scraped every 15 s with a port)."""
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    end = t0 + seconds
    while (now := time.monotonic()) < end:
        if port is not None:
            scrape(port)
        time.sleep(min(SCRAPE_EVERY, end - now))
    return (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_procpilot(tmp: Path, instances: int, seconds: float, isolation: str) -> float:
    config = tmp / "procpilot.yaml"
    config.write_text(
        f"isolation: {{backend: {isolation}}}\n"
        "programs:\n"
        "  idle:\n"
        "    command: [sleep, '100000']\n"
        f"    instances: {instances}\n"
        "    start_seconds: 100ms\n"
        "    limits: {memory: 1GiB, check_interval: 1s}\n"
    )
    sock = tmp / "ctl.sock"
    exe = ROOT / ".venv/bin/procpilot-controller"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "procpilot.controller.cli"]
    port = free_port()
    proc = subprocess.Popen(
        [*cmd, "--config.file", str(config), "--control.socket", str(sock),
         "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while running_instances(sock) < instances:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("instances did not all start")
            time.sleep(0.5)
        time.sleep(2)  # let start-up work settle
        return measure(proc.pid, seconds, port)
    finally:
        stop(proc)


def run_supervisord(tmp: Path, instances: int, seconds: float) -> float:
    config = tmp / "supervisord.conf"
    config.write_text(
        "[supervisord]\n"
        f"nodaemon=true\nlogfile={tmp}/supervisord.log\npidfile={tmp}/supervisord.pid\n"
        + ("user=root\n" if os.geteuid() == 0 else "")
        + "[program:idle]\ncommand=sleep 100000\n"
        f"numprocs={instances}\nprocess_name=%(program_name)s_%(process_num)d\n"
        f"stdout_logfile={tmp}/%(program_name)s_%(process_num)d.log\nredirect_stderr=true\n"
        "startsecs=0\n"
    )
    proc = subprocess.Popen(["supervisord", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while children(proc.pid) < instances:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("supervisord did not start all instances")
            time.sleep(0.5)
        time.sleep(2)
        return measure(proc.pid, seconds)
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="procpilot-bench-") as tmp:
        polled = run_procpilot(Path(tmp), args.instances, args.seconds, "none")
        cells = run_procpilot(Path(tmp), args.instances, args.seconds, "auto")
        theirs = (run_supervisord(Path(tmp), args.instances, args.seconds)
                  if shutil.which("supervisord") else None)
    print("| supervisor | instances | window s | CPU (% of one core) |")
    print("|---|---:|---:|---:|")
    for name, share in (("isolation none: 1 s process-tree checks", polled),
                        ("cgroup backend: kernel limits, cells read at scrape", cells)):
        print(f"| procpilot-controller, {name} | {args.instances} | {args.seconds:.0f} | "
              f"{share * 100:.2f} |")
    if theirs is not None:
        print(f"| supervisord (no memory checks) | {args.instances} | {args.seconds:.0f} | "
              f"{theirs * 100:.2f} |")


if __name__ == "__main__":
    main()
