"""A real Prometheus scrapes the real exporter: the data arrives and queries work."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.exporter.realprocs import sleepers, zombie_parent
from tests.integration import prometheus
from tests.service import Service, start

pytestmark = pytest.mark.skipif(
    prometheus.binary() is None, reason="prometheus not installed (Debian package prometheus)"
)


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Service]:
    cfg = tmp_path / "exporter.yaml"
    cfg.write_text("groups:\n  - name: it-sleepers\n    comm: [pp-it-sleeper]\n")
    service = start("exporter.cli", [f"--config.file={cfg}"], str(tmp_path / "exporter.log"))
    yield service
    service.stop()


def test_prometheus_scrapes_exporter(tmp_path: Path, exporter: Service) -> None:
    target = exporter.url.removeprefix("http://")
    server = prometheus.start(tmp_path, {"procpilot-exporter": target})
    try:
        with sleepers("pp-it-sleeper", 2), zombie_parent("pp-it-zparent", 2):
            server.wait_for('up{job="procpilot-exporter"} == 1')
            server.wait_for('procpilot_group_processes{group="it-sleepers"} == 2')
            server.wait_for('procpilot_zombie_processes{parent="pp-it-zparent"} == 2')
            server.wait_for('sum(procpilot_exporter_collector_success) == 5')
            # No scrape was refused for bad exposition: samples were all ingested.
            ingested = 'scrape_samples_post_metric_relabeling{job="procpilot-exporter"} > 50'
            assert server.query(ingested)
    finally:
        server.stop()
