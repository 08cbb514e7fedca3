"""Small helpers benchmarks share: servers on free ports, timed scrapes, /proc numbers."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from types import TracebackType

# What Prometheus itself sends, so exporters pick the same format and compression.
SCRAPE_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
    "text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int, path: str = "/metrics", timeout: float = 60.0) -> tuple[float, bytes]:
    """GET http://127.0.0.1:port/path on a fresh connection; (seconds, decoded body).

    The time covers connect, request and reading the whole (compressed) body, which is
    what a Prometheus scrape waits for; decompression is not timed.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        started = time.perf_counter()
        conn.request("GET", path, headers=SCRAPE_HEADERS)
        resp = conn.getresponse()
        body = resp.read()
        seconds = time.perf_counter() - started
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"GET :{port}{path} answered {resp.status}: {body[:200]!r}")
    if resp.getheader("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return seconds, body


def status_kib(pid: int, *keys: str) -> dict[str, int]:
    """Fields of /proc/<pid>/status given in kB (VmRSS, VmHWM, ...), as KiB."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in keys:
                found[key] = int(value.split()[0])
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 < q <= 100): always one of the measured values."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


class Server:
    """A long-running program on a local port, in its own session, logging to a file.

    Use as a context manager; it is stopped (whole process group) on exit, error or not.
    """

    def __init__(self, name: str, argv: Sequence[str], port: int) -> None:
        self.name = name
        # setpriv execs the server with a parent-death signal, so it goes even when we are
        # SIGKILLed (no preexec_fn: unsafe if a caller has threads).
        setpriv = shutil.which("setpriv")
        self.argv = [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)
        self.port = port
        # Lives as long as the server, so no `with`: stop() closes (and so deletes) it.
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log")  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the servers
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_ready(self, path: str = "/metrics", timeout: float = 60.0) -> None:
        """Poll until `path` answers 200; raise with the log's tail if it dies or stalls."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.log_tail()}")
            try:
                scrape(self.port, path, timeout=timeout)
                return
            except (OSError, RuntimeError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.name} not ready after {timeout:.0f}s: {self.log_tail()}"
                    ) from None
                time.sleep(0.1)

    def log_tail(self, limit: int = 2000) -> str:
        with open(self.log.name, "rb") as f:
            return f.read()[-limit:].decode("utf-8", "replace").strip()

    def stop(self, grace: float = 5.0) -> None:
        if self.proc is not None:
            signal_group(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
            # Also ends whatever the server started in its group and left behind.
            signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def signal_group(pgid: int, sig: int) -> None:
    """Signal a whole process group; one that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
