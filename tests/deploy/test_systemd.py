"""deploy/systemd: units parse, carry the settings the services rely on, and verify cleanly."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO

SYSTEMD = REPO / "deploy" / "systemd"
UNITS = sorted(p.name for p in SYSTEMD.glob("*.service"))
INSTALL_DIR = "/usr/local/bin/"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((SYSTEMD / name).read_text().replace("\\\n", " "))
    return parser


def test_both_services_are_here() -> None:
    assert UNITS == ["procpilot-controller.service", "procpilot-exporter.service"]


@pytest.mark.parametrize("name", UNITS)
def test_unit_has_the_usual_sections(name: str) -> None:
    parsed = unit(name)
    assert parsed.sections() == ["Unit", "Service", "Install"]
    assert parsed["Service"]["ExecStart"].startswith(INSTALL_DIR + name.removesuffix(".service"))
    assert parsed["Service"]["ProtectSystem"] in {"full", "strict"}
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


def test_exporter_runs_unprivileged_and_locked_down() -> None:
    service = unit("procpilot-exporter.service")["Service"]
    assert service["DynamicUser"] == "yes"
    assert service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == "CAP_SYS_PTRACE"
    assert "ProtectProc" not in service  # it must see every process


def test_controller_can_stop_its_programs_in_order_and_reload() -> None:
    service = unit("procpilot-controller.service")["Service"]
    assert service["KillMode"] == "mixed"
    assert service["Delegate"] == "yes"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "--control.socket=/run/procpilot/control.sock" in service["ExecStart"]
    assert service["RuntimeDirectory"] == "procpilot"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    # verify insists that ExecStart binaries exist: point them at stand-ins.
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in UNITS:
        stub = stubs / name.removesuffix(".service")
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
        text = (SYSTEMD / name).read_text().replace(INSTALL_DIR, f"{stubs}/")
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / n) for n in UNITS)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"SYSTEMD_LOG_LEVEL": "warning"},
    )
    output = result.stdout + result.stderr
    # Unknown keys and bad values are only warnings; any line about our units is a failure.
    ours = [line for line in output.splitlines() if str(tmp_path) in line or ".service" in line]
    assert result.returncode == 0, output
    assert ours == []
