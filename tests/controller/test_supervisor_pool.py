"""Pools: the autoscaler wired to real CPU samples, pinning and unpinning by control."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.controller import running
from tests.support.service import wait_for

pytestmark = pytest.mark.timeout(120)

# About a fifth of a core: well over a 1 % target, light on a shared machine.
BUSY = "import time\nwhile True:\n    sum(i * i for i in range(20000)); time.sleep(0.01)"


def pool(command: list[str], **autoscale: object) -> dict[str, object]:
    return {"command": command, "start_seconds": "100ms",
            "autoscale": {"min": 1, "max": 3, "interval": "500ms", "warmup": 0,
                          "scale_down": {"stabilization": 0}, **autoscale},
            "limits": {"check_interval": "200ms"}}


def test_busy_pool_scales_up_to_max(tmp_path: Path) -> None:
    programs = {"busy": pool([sys.executable, "-c", BUSY], cpu_target="1%")}
    with running(tmp_path, programs) as c:
        wait_for(lambda: c.metric("procpilot_program_desired_instances", program="busy") == 3,
                 what="scale up")
        for i in range(3):
            c.wait_state("busy", "running", i)
        status = c.status()["busy"]
        assert status["pool"]["min"] == 1 and status["pool"]["max"] == 3
        assert status["pool"]["utilization"] > 1
        assert "scaling pool" in c.stderr()


def test_pinned_pool_holds_then_idle_pool_scales_down(tmp_path: Path) -> None:
    programs = {"idle": pool(["sleep", "1000"], cpu_target=0.5)}
    with running(tmp_path, programs) as c:
        assert c.ok("scale", target="idle", count=3).startswith("idle: 3 desired")
        assert c.status()["idle"]["pool"]["pinned"] == 3
        for i in range(3):
            c.wait_state("idle", "running", i)
        assert c.ok("scale", target="idle", count="auto") == "idle: scaling automatically"
        wait_for(lambda: len(c.status()["idle"]["instances"]) == 1, what="scale down to min")
        assert c.metric("procpilot_program_desired_instances", program="idle") == 1
