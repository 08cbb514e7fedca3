"""The exporter while processes and threads come and go fast, scraped by four clients at
once: no scrape fails, and its caches forget the dead (memory stays flat)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.soak.scale import pick, report
from tests.support.service import start

# Forks RATE short-lived processes a second (each exits at once) and starts and ends a
# thread with each, until killed.
CHURNER = """
import os, sys, threading, time
rate = float(sys.argv[1])
step = 1 / rate
due = time.monotonic()
while True:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    t = threading.Thread(target=time.sleep, args=(0.001,))
    t.start(); t.join()
    os.waitpid(pid, 0)
    due += step
    pause = due - time.monotonic()
    if pause > 0:
        time.sleep(pause)
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def test_churn_fails_no_scrape_and_grows_no_cache(tmp_path: Path) -> None:
    seconds, rate = pick(6, 60), pick(300, 1000)
    cfg = tmp_path / "exporter.yaml"
    cfg.write_text("groups:\n  - name: '{comm}'\n    cmdline: '.*'\n")
    service = start("procpilot.exporter.cli", [f"--config.file={cfg}"], str(tmp_path / "log"))
    churner = subprocess.Popen([sys.executable, "-c", CHURNER, str(rate)])
    times: list[float] = []
    failed = 0
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def scraper() -> None:
        nonlocal failed
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(service.url + "/metrics", timeout=30) as r:
                    ok = r.status == 200 and b"procpilot_processes" in r.read()
            except OSError:
                ok = False
            with lock:
                times.append(time.monotonic() - started)
                failed += not ok
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))

    try:
        time.sleep(1)  # the exporter's caches fill up first
        rss0 = rss_kib(service.proc.pid)
        clients = [threading.Thread(target=scraper) for _ in range(4)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        rss1 = rss_kib(service.proc.pid)
    finally:
        churner.kill()
        churner.wait()
        service.stop()
    assert failed == 0
    assert rss1 - rss0 < 8 * 1024, (rss0, rss1)  # KiB
    ms = sorted(t * 1000 for t in times)
    report("exporter under churn", f"{rate:.0f} processes/s and threads, 4 clients x 10/s, "
           f"{seconds:.0f} s", {
               "scrapes": len(ms), "failed": failed,
               "p50 ms": round(statistics.median(ms), 1),
               "p99 ms": round(ms[int(len(ms) * 0.99) - 1], 1),
               "RSS start/end MiB": f"{rss0 / 1024:.1f}/{rss1 / 1024:.1f}"})
