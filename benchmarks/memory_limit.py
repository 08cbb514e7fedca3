"""How far a fast allocator gets past its memory limit: polled RSS checks against the kernel.

One program allocates and touches 20 MiB every 20 ms under ``limits.memory: 100MiB``. With
``isolation: none`` the controller checks RSS every ``check_interval`` (1 s, the default) and
restarts it when over; with the cgroup backend the kernel OOM-kills it at the limit. The
benchmark samples the instance's anonymous RSS every few milliseconds until the first
restart, for --runs restarts each, and prints the peak and why it was restarted.

    .venv/bin/python benchmarks/memory_limit.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 100 * 2**20
GROWER = ("import time\nheld = []\nwhile True:\n    held.append(bytearray(20 << 20))\n"
          "    time.sleep(0.02)\n")


def ask(sock: Path, cmd: str) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(sock))
        s.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        answer: dict[str, object] = json.loads(s.makefile("rb").readline())
    return answer


def instance(sock: Path) -> dict[str, object]:
    try:
        programs = ask(sock, "status")["result"]["programs"]  # type: ignore[index]
    except OSError:
        return {}
    found: dict[str, object] = programs[0]["instances"][0]
    return found


def anon_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(next(line for line in f if line.startswith("RssAnon:")).split()[1]) * 1024
    except (OSError, StopIteration):
        return 0


def run(tmp: Path, isolation: str, runs: int) -> tuple[list[int], list[str]]:
    """Peak anonymous RSS before each restart, and each restart's reason."""
    config = tmp / f"{isolation}.yaml"
    config.write_text(json.dumps({
        "isolation": {"backend": isolation},
        "programs": {"grower": {"command": [sys.executable, "-c", GROWER],
                                "start_seconds": "100ms", "limits": {"memory": LIMIT},
                                "restart": {"delay": "500ms", "max_restarts": 1000}}}}))
    sock = tmp / f"{isolation}.sock"
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/procpilot-controller"), "--config.file", str(config),
         "--control.socket", str(sock), "--web.listen-address", "127.0.0.1:0",
         "--log.level", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peaks: list[int] = []
    reasons: list[str] = []
    try:
        deadline = time.monotonic() + 120
        pid, peak = None, 0
        while len(peaks) < runs and time.monotonic() < deadline:
            inst = instance(sock)
            if inst.get("pid") != pid:  # a new process: the previous one was restarted
                if pid is not None:
                    peaks.append(peak)
                    reasons.append(str(inst["last_exit"]["reason"]))  # type: ignore[index]
                pid, peak = inst.get("pid"), 0
            if isinstance(pid, int):
                for _ in range(20):  # sample often between status calls
                    peak = max(peak, anon_rss(pid))
                    time.sleep(0.002)
    finally:
        proc.terminate()
        proc.wait(60)
    return peaks, reasons


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print("| isolation | limit | median peak anon RSS | worst | x limit | restart reason |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory(prefix="procpilot-bench-") as tmp:
        for isolation, label in (("none", "none: RSS polled every 1 s"),
                                 ("auto", "cgroup: kernel limit")):
            peaks, reasons = run(Path(tmp), isolation, args.runs)
            if not peaks:
                print(f"| {label} | no restart seen |")
                continue
            mib = 2**20
            print(f"| {label} | {LIMIT // mib} MiB | {statistics.median(peaks) / mib:.0f} MiB | "
                  f"{max(peaks) / mib:.0f} MiB | {max(peaks) / LIMIT:.1f} | "
                  f"{', '.join(sorted(set(reasons)))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
