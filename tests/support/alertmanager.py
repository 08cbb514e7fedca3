"""A real Alertmanager (Debian's prometheus-alertmanager) and a webhook receiver that
records what it delivers, both on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.support.prometheus import free_port


def binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


@dataclass
class Webhook:
    """Every alert Alertmanager posted, in arrival order, with the monotonic time it came."""

    url: str = ""
    alerts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def find(self, status: str, **labels: str) -> float | None:
        """When the first alert with this status and these labels arrived, or None."""
        with self.lock:
            for at, alert in self.alerts:
                if alert["status"] == status and labels.items() <= alert["labels"].items():
                    return at
        return None


@contextmanager
def webhook() -> Iterator[Webhook]:
    hook = Webhook()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with hook.lock:
                hook.alerts += [(time.monotonic(), alert) for alert in body["alerts"]]
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def alertmanager(workdir: Path, webhook_url: str) -> Iterator[str]:
    """Alertmanager delivering every alert on its own to webhook_url at once (1 s waits);
    yields its URL. Clustering is off, so it listens on 127.0.0.1 only."""
    exe = binary()
    assert exe is not None
    config = {
        "route": {
            "receiver": "test", "group_by": ["..."],
            "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h",
        },
        "receivers": [{"name": "test",
                       "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }  # fmt: skip
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (workdir / "alertmanager.log").open("wb") as log:
        proc = subprocess.Popen(
            [exe, f"--config.file={workdir / 'alertmanager.yml'}",
             f"--storage.path={workdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address="],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (workdir / "alertmanager.log").read_text()
                    raise AssertionError(f"Alertmanager did not become ready: {log_text}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
