"""Write prometheusrule.yaml from ../prometheus/alerts.yml, so the two never drift.

alerts.yml is the source (promtool tests it); the PrometheusRule wraps its groups
unchanged. Run after editing alerts.yml:  python deploy/kubernetes/build_prometheusrule.py
(tests/deploy fails while prometheusrule.yaml is out of date).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parent / "prometheus" / "alerts.yml"
OUTPUT = HERE / "prometheusrule.yaml"
HEADER = "# Generated from ../prometheus/alerts.yml by build_prometheusrule.py; do not edit.\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (long PromQL) as literal blocks, as a person would write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(alerts_text: str) -> str:
    """The PrometheusRule manifest (YAML text) holding the rule groups of alerts.yml."""
    groups = yaml.safe_load(alerts_text)["groups"]
    manifest: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "procpilot",
            "labels": {"app.kubernetes.io/part-of": "procpilot"},
        },
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=1000)


if __name__ == "__main__":
    OUTPUT.write_text(render(ALERTS.read_text()))
