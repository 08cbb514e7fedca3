"""Both Grafana dashboards against a real Prometheus scraping the running demo (`./dev demo`:
the exporter, the controller with a pool, a flaky and a leaky program): every panel query
returns data, except the few named below with the reason they can be empty."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.promql import substitute_grafana_variables
from tests.deploy.test_grafana import LABEL_VALUES
from tests.integration.test_demo import DEMO, port_in_use
from tests.support import prometheus

REPO = Path(__file__).parents[2]
DASHBOARDS = sorted((REPO / "grafana").glob("*.json"))
# Panels whose data needs an event the demo does not make happen, and why.
MAY_BE_EMPTY = {
    "Zombies by parent": "only while a parent leaves zombies unreaped; the demo makes none",
    "Oldest zombie, time since its process started": "as Zombies by parent",
    "Orphans by name and user": "only while the host has orphans",
}

pytestmark = [
    pytest.mark.skipif(prometheus.binary() is None,
                       reason="prometheus not installed (Debian package prometheus)"),
    pytest.mark.skipif(port_in_use(10120) or port_in_use(10121),
                       reason="the demo's fixed ports 10120/10121 are taken"),
    pytest.mark.timeout(240),
]  # fmt: skip


def panel_queries() -> dict[str, list[str]]:
    """'dashboard: panel' -> its PromQL, with Grafana's variables as in Prometheus."""
    queries: dict[str, list[str]] = {}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                # A rate window of 5 m, as promql.py uses, holds enough 5 s demo scrapes.
                expr = substitute_grafana_variables(target["expr"])
                queries.setdefault(f"{path.stem}: {panel['title']}", []).append(expr)
        for variable in board["templating"]["list"]:
            if m := LABEL_VALUES.match(variable.get("definition", "")):
                expr = substitute_grafana_variables(f"count by ({m[2]}) ({m[1]})")
                queries[f"{path.stem}: variable {variable['name']}"] = [expr]
    return queries


@pytest.fixture
def demo_prometheus() -> Iterator[prometheus.Prometheus]:
    """The demo running with its Prometheus; the pool loaded so that it scales."""
    load = REPO / "run" / "demo" / "load"
    shutil.rmtree(REPO / "run" / "demo" / "tsdb", ignore_errors=True)  # data of this run only
    proc = subprocess.Popen([sys.executable, str(DEMO)], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        url = None
        for line in proc.stdout:  # the demo prints its addresses once both services answer
            if m := re.match(r"\s+prometheus\s+(http://\S+)", line.decode()):
                url = m[1]
                break
        assert url is not None, "the demo printed no Prometheus address"
        load.touch()
        yield prometheus.Prometheus(proc, url)
    finally:
        load.unlink(missing_ok=True)
        proc.send_signal(signal.SIGINT)  # the demo stops its programs and Prometheus
        try:
            assert proc.wait(timeout=120) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_every_panel_returns_data(demo_prometheus: prometheus.Prometheus) -> None:
    waiting = panel_queries()
    deadline = time.monotonic() + 90  # the pool's first scale-up takes the longest

    def unexpected() -> set[str]:
        return {panel.split(": ", 1)[1] for panel in waiting} - MAY_BE_EMPTY.keys()

    while unexpected() and time.monotonic() < deadline:
        for panel, exprs in list(waiting.items()):
            if all(demo_prometheus.query(expr) for expr in exprs):
                del waiting[panel]
        time.sleep(1)
    assert not unexpected(), sorted(unexpected())
