"""docs/runbooks/: one page per alert, each rule's runbook_url pointing at its page."""

from __future__ import annotations

import re

import pytest

from .conftest import REPO
from .test_prometheus import alert_rules

RUNBOOKS = REPO / "docs" / "runbooks"
SECTIONS = ["## Meaning", "## Confirm", "## Fix"]  # what it means, how to confirm, how to fix
ALERTS = {str(rule["alert"]): rule for rule in alert_rules()}


def test_every_alert_has_a_page_and_every_page_an_alert() -> None:
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == set(ALERTS)


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_runbook_url_points_at_the_page(alert: str) -> None:
    annotations = ALERTS[alert]["annotations"]
    assert isinstance(annotations, dict)
    url = annotations["runbook_url"]
    assert url == f"docs/runbooks/{alert}.md"
    assert (REPO / url).is_file()


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_page_says_what_it_means_how_to_confirm_and_fix(alert: str) -> None:
    text = (RUNBOOKS / f"{alert}.md").read_text()
    assert text.startswith(f"# {alert}\n")
    positions = [text.find(f"\n{section}\n") for section in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), positions


def test_index_lists_every_page_with_its_severity() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    listed = dict(re.findall(r"^\| \[(\w+)\]\(\1\.md\) \| (\w+) \|$", index, re.M))
    severities = {}
    for name, rule in ALERTS.items():
        assert isinstance(rule["labels"], dict)
        severities[name] = rule["labels"]["severity"]
    assert listed == severities


def test_links_between_pages_resolve() -> None:
    for page in RUNBOOKS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            assert (page.parent / target).resolve().exists(), f"{page.name}: {target}"
