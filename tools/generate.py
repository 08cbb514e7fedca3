"""Rewrite every file derived from the code: `./dev generate` (tests/deploy fails while one
is out of date).

- README.md: the metric reference tables, from the family declarations;
- exporter/ and controller/config.schema.json: the JSON Schemas, from the config models;
- grafana/*.json: the dashboards, from grafana/build.py;
- deploy/kubernetes/prometheusrule.yaml: the rules of deploy/prometheus/alerts.yml.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from procpilot.controller import config as controller_config
from procpilot.controller import families as controller
from procpilot.core.metricdef import Family, markdown_table
from procpilot.exporter import config as exporter_config
from procpilot.exporter import families as exporter

REPO = Path(__file__).resolve().parents[1]
# README sections between <!-- metrics:NAME --> and <!-- /metrics:NAME -->.
TABLES: dict[str, Iterable[Family]] = {
    "exporter": exporter.ALL,
    "controller": controller.CONTROLLER,
    "pool": controller.POOL,
}


def readme(text: str) -> str:
    """text with every marked metric table regenerated; ValueError when a marker is missing."""
    for name, families in TABLES.items():
        pattern = re.compile(rf"(<!-- metrics:{name} -->\n).*?(\n<!-- /metrics:{name} -->)",
                             re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md has no <!-- metrics:{name} --> section")
        table = markdown_table(families).replace("\\", "\\\\")
        text = pattern.sub(rf"\g<1>{table}\g<2>", text)
    return text


def load_script(path: Path) -> ModuleType:
    """Import a generator script that lives outside any package (grafana/, deploy/)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def outputs() -> dict[Path, str]:
    """Every generated file and what it must contain."""
    grafana = load_script(REPO / "grafana" / "build.py")
    rules = load_script(REPO / "deploy" / "kubernetes" / "build_prometheusrule.py")
    files = {
        REPO / "README.md": readme((REPO / "README.md").read_text()),
        REPO / "exporter" / "config.schema.json": exporter_config.json_schema(),
        REPO / "controller" / "config.schema.json": controller_config.json_schema(),
        rules.OUTPUT: rules.render(rules.ALERTS.read_text()),
    }
    for filename, build in grafana.DASHBOARDS.items():
        files[grafana.HERE / filename] = grafana.render(build())
    return files


def main() -> int:
    for path, text in outputs().items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
