"""Run procpilot's services as real subprocesses and scrape them over HTTP."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
ADDRESS = re.compile(r"msg=listening address=(\S+)")


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The sample with exactly these labels, None when absent."""
    return samples.get((metric, tuple(sorted(labels.items()))))


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: str

    def get(self, path: str = "/metrics") -> str:
        with urllib.request.urlopen(self.url + path, timeout=30) as resp:
            body: bytes = resp.read()
        return body.decode()

    def scrape(self) -> Samples:
        return parse(self.get())

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=30)


def start(module: str, args: Sequence[str], log_path: str, timeout: float = 30.0,
          **popen: Any) -> Service:
    """Start `python -m module args` on 127.0.0.1:0, stderr to log_path; wait for its address."""
    argv = [sys.executable, "-m", module, "--web.listen-address=127.0.0.1:0", *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stderr=log, stdin=subprocess.DEVNULL, **popen)
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        with open(log_path, errors="replace") as f:
            text = f.read()
        if m := ADDRESS.search(text):
            return Service(proc, f"http://{m.group(1)}", log_path)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"{module} did not start (exit {proc.returncode}): {text}")


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until cond() is truthy and return its value; generous deadline, no timing asserts."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def promtool() -> str | None:
    return shutil.which("promtool")


def promtool_check_metrics(text: str) -> str:
    """Problems promtool finds in an exposition, empty when clean."""
    tool = promtool()
    assert tool is not None
    result = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True,
                            text=True, check=False)
    return (result.stdout + result.stderr).strip()
