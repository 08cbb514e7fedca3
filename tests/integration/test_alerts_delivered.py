"""The shipped alerting rules, end to end: the real exporter and controller, a real
Prometheus evaluating the rules, a real Alertmanager, and a webhook receiver in the test.

The rules are test-only copies with `for:` of 2 s and range windows 60 times shorter
(`[10m]` becomes `[10s]`), so that firing and resolving take seconds; everything else is the
shipped expression, labels and annotations.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support import alertmanager, prometheus
from tests.support.realprocs import zombie_parent
from tests.support.service import start, wait_for

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "alerts.yml"
RANGE = re.compile(r"\[(\d+)([smh])\]")
SECONDS = {"s": 1, "m": 60, "h": 3600}

pytestmark = [
    pytest.mark.skipif(prometheus.binary() is None,
                       reason="prometheus not installed (Debian package prometheus)"),
    pytest.mark.skipif(alertmanager.binary() is None,
                       reason="Debian package prometheus-alertmanager not installed"),
]  # fmt: skip


def quick_rules(directory: Path) -> Path:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "2s"
            rule["expr"] = RANGE.sub(
                lambda m: f"[{max(5, int(m[1]) * SECONDS[m[2]] // 60)}s]", rule["expr"]
            )
    path = directory / "alerts.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


def controller_config(path: Path, crasher: dict[str, object]) -> None:
    path.write_text(yaml.safe_dump({"programs": {
        "steady": {"command": [sys.executable, "-c", "import time; time.sleep(3600)"]},
        "crasher": crasher,
    }}))  # fmt: skip


CRASHING: dict[str, object] = {"command": "exit 3", "shell": True,
            "restart": {"delay": "200ms", "max_delay": "200ms", "jitter": 0,
                        "max_restarts": 100000, "window": "1m"}}  # fmt: skip
FIXED: dict[str, object] = {"command": "sleep 3600"}


def test_crash_loop_and_zombie_alerts_are_delivered_and_resolved(tmp_path: Path) -> None:
    config = tmp_path / "controller.yaml"
    controller_config(config, CRASHING)
    exporter = start("procpilot.exporter.cli", [], str(tmp_path / "exporter.log"))
    controller = start("procpilot.controller.cli",
                       [f"--config.file={config}", f"--control.socket={tmp_path / 'ctl.sock'}"],
                       str(tmp_path / "controller.log"))  # fmt: skip
    try:
        with alertmanager.webhook() as hook, \
                alertmanager.alertmanager(tmp_path, hook.url) as am_url:
            server = prometheus.start(
                tmp_path,
                {"procpilot-exporter": exporter.url.removeprefix("http://"),
                 "procpilot-controller": controller.url.removeprefix("http://")},
                rule_files=[str(quick_rules(tmp_path))],
                alertmanager=am_url.removeprefix("http://"),
            )  # fmt: skip
            try:
                crash = {"alertname": "ProcpilotProgramCrashLooping", "program": "crasher"}
                zombies = {"alertname": "ProcpilotZombiesAccumulating", "parent": "pp-am-zombies"}
                began = time.monotonic()
                with zombie_parent("pp-am-zombies", 5):
                    fired = wait_for(lambda: hook.find("firing", **zombies), timeout=90,
                                     what="the zombie alert delivered")
                    wait_for(lambda: hook.find("firing", **crash), timeout=90,
                             what="the crash-loop alert delivered")
                removed = time.monotonic()  # the zombies' parent is gone: they are reaped
                controller_config(config, FIXED)
                controller.proc.send_signal(signal.SIGHUP)
                wait_for(lambda: hook.find("resolved", **zombies), timeout=90,
                         what="the zombie alert resolved")
                wait_for(lambda: hook.find("resolved", **crash), timeout=90,
                         what="the crash-loop alert resolved")
                delivered = {
                    "zombies firing": fired - began,
                    "crash loop firing": (hook.find("firing", **crash) or 0) - began,
                    "zombies resolved": (hook.find("resolved", **zombies) or 0) - removed,
                    "crash loop resolved": (hook.find("resolved", **crash) or 0) - removed,
                }
                print("delivered after (s):", {k: round(v, 1) for k, v in delivered.items()})
                # What reached the receiver is the shipped alert: labels and annotations.
                alert = next(a for _, a in hook.alerts if crash.items() <= a["labels"].items())
                assert alert["labels"]["severity"] == "warning"
                assert alert["annotations"]["runbook_url"] == (
                    "docs/runbooks/ProcpilotProgramCrashLooping.md"
                )
                assert not hook.find("firing", alertname="ProcpilotProgramCrashLooping",
                                     program="steady")
            finally:
                server.stop()
    finally:
        exporter.stop()
        assert controller.stop() == 0
