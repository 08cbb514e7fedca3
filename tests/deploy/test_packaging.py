"""The distribution installs one import name, procpilot, and its console scripts point into it.

Builds the real wheel (no build isolation: setuptools comes with the test extras) and reads
what it would install; the source tree is checked for imports of the bare folder names,
which work from a checkout but not from an installed wheel.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import REPO

SCRIPTS = {"procpilot-exporter", "procpilot-controller", "procpilot-run", "procpilotctl"}


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = out.glob("procpilot-*.whl")
    return wheel


def test_wheel_has_one_top_level_name_and_scripts_into_it(tmp_path: Path) -> None:
    with zipfile.ZipFile(build_wheel(tmp_path)) as whl:
        names = whl.namelist()
        tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
        assert tops == {"procpilot"}
        for part in ("core", "exporter", "controller"):
            assert f"procpilot/{part}/__init__.py" in names
        assert "procpilot/exporter/config.schema.json" in names
        assert "procpilot/py.typed" in names
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = dict(
            line.replace(" ", "").split("=", 1)
            for line in whl.read(entry_points).decode().splitlines()
            if "=" in line
        )
    assert set(scripts) <= SCRIPTS
    assert all(target.startswith("procpilot.") for target in scripts.values())


def test_code_imports_only_the_namespace() -> None:
    bare = {"core", "exporter", "controller"}
    offenders = []
    for folder in bare:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in bare]
    assert offenders == []


def test_the_core_imports_neither_service() -> None:
    for path in (REPO / "core").rglob("*.py"):
        text = path.read_text()
        assert "procpilot.exporter" not in text and "procpilot.controller" not in text, path


def test_the_controller_imports_nothing_from_the_exporter() -> None:
    for path in (REPO / "controller").rglob("*.py"):
        assert "procpilot.exporter" not in path.read_text(), path


def test_only_the_core_names_proc_paths() -> None:
    """The services reach /proc through core.procfs, so `--procfs` moves every read."""
    found = []
    for folder in ("exporter", "controller"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                head = node.values[0] if isinstance(node, ast.JoinedStr) and node.values else node
                if isinstance(head, ast.Constant) and str(head.value).startswith("/proc"):
                    found.append(f"{path.relative_to(REPO)} {head.value!r}")
    assert found == ["exporter/cli.py '/proc'"]  # the --procfs flag's default
