"""deploy/prometheus: rules and scrape config pass promtool, and the unit tests pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import REPO
from .promql import contract_violations

PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"


def promtool_ok(*args: str | Path) -> None:
    result = subprocess.run(
        [str(a) for a in args], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def alert_rules() -> list[dict[str, object]]:
    return [rule for g in yaml.safe_load(ALERTS.read_text())["groups"] for rule in g["rules"]]


def test_rules_pass_promtool_check(promtool: str) -> None:
    promtool_ok(promtool, "check", "rules", ALERTS)


def test_rules_pass_their_unit_tests(promtool: str) -> None:
    promtool_ok(promtool, "test", "rules", PROMETHEUS / "alerts_test.yml")


def test_scrape_config_passes_promtool_check(promtool: str) -> None:
    promtool_ok(promtool, "check", "config", PROMETHEUS / "prometheus.yml")


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: str(r["alert"]))
def test_rule_uses_contract_metrics_only(rule: dict[str, object]) -> None:
    assert contract_violations(str(rule["expr"])) == []


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: str(r["alert"]))
def test_rule_tells_the_on_call_what_to_do(rule: dict[str, object]) -> None:
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    assert {"summary", "description", "runbook_url"} <= annotations.keys()
    labels = rule["labels"]
    assert isinstance(labels, dict)
    assert labels["severity"] in {"info", "warning", "critical"}


def test_every_alert_has_a_firing_unit_test() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert fired == {rule["alert"] for rule in alert_rules()}
