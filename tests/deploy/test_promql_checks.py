"""The checking helpers themselves catch what they are meant to catch."""

from __future__ import annotations

from pathlib import Path

from .contract import METRICS, PROMISED
from .promql import contract_violations, names, promtool_check, substitute_grafana_variables


def test_promtool_check_rejects_broken_syntax(promtool: str, tmp_path: Path) -> None:
    code, output = promtool_check({"good": "up == 0", "broken one": "sum((up)"}, tmp_path, promtool)
    assert code != 0
    assert "broken one" in output


def test_names_skips_functions_keywords_and_grouping() -> None:
    found = names(
        'sum by (job, program) (increase(procpilot_program_restarts_total{reason!="manual"}[10m]))'
        " > 2 unless on (job) up offset 5m"
    )
    assert [s.metric for s in found.selectors] == ["procpilot_program_restarts_total", "up"]
    assert found.selectors[0].matchers == [("reason", "!=", "manual")]
    assert found.grouping == {"job", "program"}


def test_contract_violations_name_unknown_metrics_labels_and_values() -> None:
    problems = contract_violations(
        'procpilot_program_state{state="fatl", color="red"} + procpilot_nope'
        " / on (flavor) procpilot_threads"
    )
    assert problems == [
        'procpilot_program_state{state="fatl"}: not one of '
        "['backoff', 'exited', 'fatal', 'running', 'starting', 'stopped', 'stopping']",
        "procpilot_program_state has no label color",
        "unknown metric procpilot_nope",
        "grouping by unknown label flavor",
    ]


def test_grafana_variables_become_valid_promql() -> None:
    expr = 'rate(x{instance=~"$instance", g=~"${group}"}[$__rate_interval])'
    assert substitute_grafana_variables(expr) == 'rate(x{instance=~".+", g=~".+"}[5m])'


def test_every_promised_metric_is_declared() -> None:
    assert {name: METRICS.get(name) for name in PROMISED} == PROMISED
