"""deploy/systemd: the units start the services with flags they accept, verify cleanly, and
sandbox the exporter well by systemd's own measure."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from procpilot.controller import cli as controller_cli
from procpilot.exporter import cli as exporter_cli

from .conftest import REPO

SYSTEMD = REPO / "deploy" / "systemd"
UNITS = sorted(p.name for p in SYSTEMD.glob("*.service"))
INSTALL_DIR = "/usr/local/bin/"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string((SYSTEMD / name).read_text().replace("\\\n", " "))
    return parser


def exec_start(name: str) -> list[str]:
    return shlex.split(unit(name)["Service"]["ExecStart"])


def test_exec_start_uses_only_flags_the_service_accepts() -> None:
    parsers = {"procpilot-exporter": exporter_cli.parse_args,
               "procpilot-controller": controller_cli.parse_args}
    for name in UNITS:
        binary, *args = exec_start(name)
        assert binary.startswith(INSTALL_DIR)
        parsers[binary.removeprefix(INSTALL_DIR)](args)  # SystemExit on an unknown flag


def test_controller_socket_lives_in_the_runtime_directory() -> None:
    service = unit("procpilot-controller.service")["Service"]
    socket = next(a for a in exec_start("procpilot-controller.service")
                  if a.startswith("--control.socket="))
    assert socket.split("=", 1)[1].startswith(f"/run/{service['RuntimeDirectory']}/")


def stub_units(tmp_path: Path) -> list[Path]:
    """The units with ExecStart pointed at stand-ins (systemd insists the binaries exist)."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    paths = []
    for name in UNITS:
        stub = stubs / name.removesuffix(".service")
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
        text = (SYSTEMD / name).read_text().replace(INSTALL_DIR, f"{stubs}/")
        paths.append(tmp_path / name)
        paths[-1].write_text(text)
    return paths


def analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    return path


def test_exporter_sandbox_exposure_is_ok(tmp_path: Path) -> None:
    """The exporter only reads /proc and serves HTTP: systemd rates its sandbox OK or better."""
    exporter = next(p for p in stub_units(tmp_path) if p.name == "procpilot-exporter.service")
    result = subprocess.run([analyze(), "security", "--offline=true", "--no-pager",
                             str(exporter)], capture_output=True, text=True, timeout=60,
                            check=False)
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert level, result.stdout + result.stderr
    assert float(level[1]) <= 4.0  # systemd: below 4.0 is "OK"


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    result = subprocess.run(
        [analyze(), "verify", "--man=no", *map(str, stub_units(tmp_path))],
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
