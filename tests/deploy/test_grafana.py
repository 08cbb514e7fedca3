"""grafana/: dashboards are up to date with build.py, well-formed, and query only the contract."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, load_script
from .promql import contract_violations, promtool_check, substitute_grafana_variables

GRAFANA = REPO / "grafana"
BUILD = load_script(GRAFANA / "build.py")
FILES = sorted(BUILD.DASHBOARDS)
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+), *(?P<label>\w+)\)$")
def load(filename: str) -> dict[str, Any]:
    board: dict[str, Any] = json.loads((GRAFANA / filename).read_text())
    return board


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep theirs inside


def queries(filename: str) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of a dashboard."""
    board = load(filename)
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield f"{filename}: {panel['title']} [{target['refId']}]", target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            m = LABEL_VALUES.match(variable["query"]["query"])
            assert m, f"{filename}: variable {variable['name']}: not a label_values() query"
            # As an aggregation, so the label is checked against the metric's labels too.
            yield (
                f"{filename}: variable {variable['name']}",
                f"count by ({m['label']}) ({m['selector']})",
            )


ALL_QUERIES = [q for f in FILES for q in queries(f)]



@pytest.mark.parametrize("filename", FILES)
def test_dashboard_shape(filename: str) -> None:
    board = load(filename)
    assert board["schemaVersion"] == 39
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("filename", FILES)
def test_every_panel_has_a_unit_and_the_datasource_variable(filename: str) -> None:
    for panel in panels(load(filename)):
        if panel["type"] == "row":
            continue
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        sources = [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]
        assert all(s == {"type": "prometheus", "uid": "${datasource}"} for s in sources)


def test_units_match_what_the_metrics_measure() -> None:
    """A query of *_bytes shows bytes, of *_seconds (a time) seconds, of a ratio percent."""
    for filename in FILES:
        for panel in panels(load(filename)):
            if panel["type"] != "timeseries":
                continue
            unit = panel["fieldConfig"]["defaults"]["unit"]
            first = panel["targets"][0]["expr"]
            if "_bytes" in first and "/" not in first:
                assert unit == ("Bps" if "rate(" in first else "bytes"), panel["title"]
            if "time() - " in first:
                assert unit == "s", panel["title"]
            if "_ratio" in first:
                assert unit == "percentunit", panel["title"]


def test_every_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    exprs = {where: substitute_grafana_variables(expr) for where, expr in ALL_QUERIES}
    code, output = promtool_check(exprs, tmp_path, promtool)
    assert code == 0, output


@pytest.mark.parametrize(("where", "expr"), ALL_QUERIES, ids=[w for w, _ in ALL_QUERIES])
def test_query_uses_contract_metrics_only(where: str, expr: str) -> None:
    assert contract_violations(substitute_grafana_variables(expr)) == []
