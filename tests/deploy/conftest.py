"""Fixtures for the operations-file tests: paths and external tools (skipped when absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.generate import load_script

__all__ = ["REPO", "load_script"]

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
