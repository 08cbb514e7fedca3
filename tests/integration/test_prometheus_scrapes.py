"""A real Prometheus scrapes the real exporter and controller, with the shipped alert rules."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from procpilot.exporter.families import COLLECTOR_NAMES
from tests.support import prometheus
from tests.support.realprocs import sleepers, zombie_parent
from tests.support.service import Service, start

RULES = Path(__file__).parents[2] / "deploy" / "prometheus" / "alerts.yml"

pytestmark = pytest.mark.skipif(
    prometheus.binary() is None, reason="prometheus not installed (Debian package prometheus)"
)


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Service]:
    cfg = tmp_path / "exporter.yaml"
    cfg.write_text("groups:\n  - name: it-sleepers\n    comm: [pp-it-sleeper]\n")
    service = start("procpilot.exporter.cli", [f"--config.file={cfg}"],
                    str(tmp_path / "exporter.log"))
    yield service
    service.stop()


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[Service]:
    programs = {
        "steady": {"command": [sys.executable, "-c", "import time; time.sleep(3600)"]},
        # Fails at once, twice at most, then stays fatal.
        "doomed": {"command": [sys.executable, "-c", "raise SystemExit(4)"],
                   "restart": {"delay": 0, "max_restarts": 1, "window": "1h"}},
    }
    cfg = tmp_path / "controller.yaml"
    cfg.write_text(yaml.safe_dump({"programs": programs}))
    service = start("procpilot.controller.cli", [f"--config.file={cfg}",
                                       f"--control.socket={tmp_path / 'control.sock'}"],
                    str(tmp_path / "controller.log"))
    yield service
    assert service.stop() == 0


def test_prometheus_scrapes_exporter_and_controller(
    tmp_path: Path, exporter: Service, controller: Service
) -> None:
    server = prometheus.start(
        tmp_path,
        {"procpilot-exporter": exporter.url.removeprefix("http://"),
         "procpilot-controller": controller.url.removeprefix("http://")},
        rule_files=[str(RULES)],
    )
    try:
        with sleepers("pp-it-sleeper", 2), zombie_parent("pp-it-zparent", 2):
            server.wait_for('up{job="procpilot-exporter"} == 1')
            server.wait_for('procpilot_group_processes{group="it-sleepers"} == 2')
            server.wait_for('procpilot_zombie_processes{parent="pp-it-zparent"} == 2')
            server.wait_for(
                f"sum(procpilot_exporter_collector_success) == {len(COLLECTOR_NAMES)}")
            # Every sample of the exposition was ingested (none refused as malformed).
            assert server.query('scrape_samples_post_metric_relabeling{job="procpilot-exporter"}'
                                " > 50")

        server.wait_for('up{job="procpilot-controller"} == 1')
        server.wait_for('procpilot_program_state{program="steady", state="running"} == 1')
        server.wait_for('procpilot_program_state{program="doomed", state="fatal"} == 1')
        server.wait_for('procpilot_program_restarts_total{program="doomed"} > 0')
        server.wait_for('procpilot_program_exit_code{program="doomed"} == 4')
        # The shipped rules evaluate against the real series: the fatal program's alert is
        # pending (its `for:` keeps it from firing within a test's lifetime).
        server.wait_for('ALERTS{alertname="ProcpilotProgramFatal", program="doomed"}')
        assert not server.query('ALERTS{program="steady"}')
    finally:
        server.stop()
