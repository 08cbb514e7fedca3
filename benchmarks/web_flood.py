"""Both services' HTTP server under hostile load, on 127.0.0.1: the README's reliability rows.

Scenarios, each against a fresh exporter and a fresh controller run with the open-file soft
limit of a default systemd service (1024, so at most 512 connections are kept):

- burst: 20 scrapers start a scrape on fresh connections at the same moment, 10 times;
- flood: the same bursts while 1,000 idle and 200 slowloris connections (a head that is
  never finished) are held open: scrape latency, the service's peak thread count, and how
  many flood connections the server closed to make room or on a deadline;
- malformed: 1,000 malformed requests (garbage, a 70 KB path, HTTP/9.9, binary bytes):
  the statuses, and the log lines and tracebacks they caused.

Prints one markdown table. Times are for this machine only; the tests assert none of them.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from _common import Server, free_port, percentile, scrape

BIN = Path(sys.executable).parent
SCRAPERS, ROUNDS = 20, 10
IDLE, SLOW = 1000, 200
MALFORMED = {
    "garbage": b"GARBAGE\r\n\r\n",
    "70KB path": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
    "HTTP/9.9": b"GET / HTTP/9.9\r\n\r\n",
    "binary": bytes(range(256)),
}


def service(name: str, work: Path) -> Server:
    port = free_port()
    argv = ["prlimit", "--nofile=1024:", "--", str(BIN / f"procpilot-{name}"),
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=debug"]
    if name == "controller":
        programs = {"programs": {"idle": {"command": "sleep 600"}}}
        (work / "c.yaml").write_text(yaml.safe_dump(programs))
        argv += [f"--config.file={work / 'c.yaml'}", f"--control.socket={work / 'c.sock'}"]
    return Server(name, argv, port)


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def bursts(port: int) -> tuple[list[float], int]:
    """Latencies of ROUNDS bursts of SCRAPERS simultaneous scrapes, and the failures."""
    latencies: list[float] = []
    failures = 0
    for _ in range(ROUNDS):
        def one(gate: threading.Barrier) -> None:
            nonlocal failures
            gate.wait(60)
            try:
                latencies.append(scrape(port, timeout=30)[0])
            except (OSError, RuntimeError):
                failures += 1

        gate = threading.Barrier(SCRAPERS)
        workers = [threading.Thread(target=one, args=(gate,)) for _ in range(SCRAPERS)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
    return latencies, failures


def latency(values: list[float], failures: int) -> str:
    ms = [v * 1000 for v in values]
    return (f"median {percentile(ms, 50):.0f} ms, p90 {percentile(ms, 90):.0f} ms, "
            f"max {max(ms):.0f} ms, {failures} failed")


def closed_by_server(conns: list[socket.socket]) -> int:
    count = 0
    for c in conns:
        c.setblocking(False)
        try:
            count += c.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, ConnectionError):
            count += not isinstance(sys.exc_info()[1], BlockingIOError)
    return count


def flood(server: Server) -> str:
    conns = []
    for i in range(IDLE + SLOW):
        c = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        if i % ((IDLE + SLOW) // SLOW) == 0:
            c.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        conns.append(c)
    peak, done = [threads(server.pid)], threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak.append(threads(server.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        values, failures = bursts(server.port)
    finally:
        done.set()
        sampler.join()
    closed = closed_by_server(conns)
    for c in conns:
        c.close()
    return (f"{latency(values, failures)}; peak {max(peak)} threads; "
            f"{closed} flood connections closed")


def malformed(server: Server) -> str:
    statuses: collections.Counter[str] = collections.Counter()
    for kind, raw in MALFORMED.items():
        for _ in range(1000 // len(MALFORMED)):
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
                with contextlib.suppress(ConnectionError):  # answered before all was sent
                    s.sendall(raw)
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
            statuses[f"{kind} {answer.split(b' ', 2)[1].decode() if answer else 'none'}"] += 1
    time.sleep(0.5)  # let the last log lines reach the file
    log = server.log_tail(limit=1 << 30)
    lines = log.count('msg="bad request"')
    return (", ".join(f"{k}: {v}" for k, v in statuses.items())
            + f"; {lines} log lines, {log.count('Traceback')} tracebacks")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", default="exporter,controller")
    args = parser.parse_args()
    print("| service | scenario | load | result |\n|---|---|---|---|")
    for name in args.services.split(","):
        for scenario, load, run in [
            ("burst", f"{ROUNDS} x {SCRAPERS} scrapes at once, fresh connections", None),
            ("flood", f"the same, with {IDLE} idle + {SLOW} slowloris connections open", flood),
            ("malformed", "1,000 malformed requests, 4 kinds", malformed),
        ]:
            with tempfile.TemporaryDirectory() as work, service(name, Path(work)) as server:
                server.wait_ready()
                result = latency(*bursts(server.port)) if run is None else run(server)
            print(f"| procpilot-{name} | {scenario} | {load} | {result} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
