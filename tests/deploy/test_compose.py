"""deploy/compose: not run here (no container engine), so checked offline: the compose file
against the Compose Specification's JSON Schema (as vendored by the check-jsonschema package,
with its source and licence), and every file it mounts with the tool that reads it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from procpilot.controller import config as controller_config

from .conftest import REPO

COMPOSE = REPO / "deploy" / "compose"
FILE = COMPOSE / "compose.yaml"
SPEC = yaml.safe_load(FILE.read_text())
SERVICES: dict[str, Any] = SPEC["services"]


def check_against_compose_spec(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def mounts(service: str) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes left out)."""
    out = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            out[target] = (COMPOSE / source).resolve() if source.startswith(".") else Path(source)
    return out


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    result = check_against_compose_spec(FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "compose.yaml"  # and the check does catch a mistake
    broken.write_text(FILE.read_text().replace("    pid: host", "    pids: host"))
    assert check_against_compose_spec(broken).returncode != 0


def test_it_runs_the_whole_stack_on_loopback_ports() -> None:
    assert set(SERVICES) == {"exporter", "controller", "prometheus", "alertmanager", "grafana"}
    for name, service in SERVICES.items():
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", [])), name


def test_bind_mounts_and_build_context_exist() -> None:
    for name in SERVICES:
        for target, source in mounts(name).items():
            assert source.exists(), f"{name}: {source} (for {target})"
    build = SERVICES["exporter"]["build"]
    assert (COMPOSE / build["context"] / build["dockerfile"]).resolve().is_file()


def test_prometheus_config_scrapes_the_services_and_loads_the_rules(
    promtool: str, tmp_path: Path
) -> None:
    for target, source in mounts("prometheus").items():  # laid out as in the container
        if target.startswith("/etc/prometheus/"):
            shutil.copy(source, tmp_path / Path(target).name)
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"]
               for job in config["scrape_configs"]}
    assert targets == {"procpilot-exporter": ["exporter:10120"],
                       "procpilot-controller": ["controller:10121"]}
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]


def test_alertmanager_config_passes_amtool() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (Debian package prometheus-alertmanager)")
    result = subprocess.run([amtool, "check-config", str(COMPOSE / "alertmanager.yml")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_controller_config_loads() -> None:
    (source,) = mounts("controller").values()
    assert set(controller_config.load(str(source)).programs) == {"web", "workers"}


def test_grafana_provisions_the_datasource_and_the_dashboards() -> None:
    grafana = mounts("grafana")
    datasources = yaml.safe_load(grafana[
        "/etc/grafana/provisioning/datasources/procpilot.yaml"].read_text())["datasources"]
    assert [(d["type"], d["url"], d["isDefault"]) for d in datasources] == [
        ("prometheus", "http://prometheus:9090", True)
    ]
    (provider,) = yaml.safe_load(grafana[
        "/etc/grafana/provisioning/dashboards/procpilot.yaml"].read_text())["providers"]
    dashboards = grafana[provider["options"]["path"]]
    assert sorted(p.name for p in dashboards.glob("*.json")) == [
        "procpilot-controller.json", "procpilot-exporter.json"
    ]
