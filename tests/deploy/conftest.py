"""Fixtures for the operations-file tests: paths and external tools (skipped when absent)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus; ./dev test installs it)")
    return path


@pytest.fixture
def schemas() -> Path:
    """prometheus-operator CRD schemas, kept beside these tests (see schemas/README.md)."""
    return Path(__file__).parent / "schemas"


def load_script(path: Path) -> ModuleType:
    """Import a generator script that lives outside any package (grafana/, deploy/)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
