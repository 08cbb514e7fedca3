"""The quick start's demo command comes up, reports its programs and stops cleanly."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).parents[2] / "examples" / "demo.py"


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(port_in_use(10120) or port_in_use(10121),
                    reason="the demo's fixed ports 10120/10121 are taken")
def test_demo_runs_and_stops_cleanly() -> None:
    result = subprocess.run([sys.executable, str(DEMO), "--duration", "8", "--check"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "procpilot demo is running" in result.stdout
    for program in ("exporter", "web", "flaky", "leaky", "workers"):
        assert program in result.stdout
