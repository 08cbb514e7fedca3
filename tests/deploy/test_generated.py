"""Every file derived from the code is up to date (tools/generate.py, run by ./dev generate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO, load_script

GENERATE = load_script(REPO / "tools" / "generate.py")
OUTPUTS = GENERATE.outputs()


@pytest.mark.parametrize("path", sorted(OUTPUTS), ids=lambda p: str(p.relative_to(REPO)))
def test_is_current(path: Path) -> None:
    assert path.read_text() == OUTPUTS[path], "run ./dev generate"


def test_readme_tables_list_every_declared_family_once() -> None:
    readme = (REPO / "README.md").read_text()
    declared = [f.name for families in GENERATE.TABLES.values() for f in families]
    assert len(declared) == len(set(declared))
    assert all(readme.count(f"| `{name}` |") == 1 for name in declared)
