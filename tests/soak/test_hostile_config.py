"""Malformed configs: each is refused with the file, the key and what was expected (exit 2
at start-up), and a running controller that is asked to reload one keeps its programs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.controller import running

BOMB = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9))
CORPUS = {
    "wrong type": ("programs: {web: {command: sleep 1, instances: lots}}\n",
                   "programs.web.instances"),
    "negative": ("programs: {web: {command: sleep 1, instances: -3}}\n",
                 "programs.web.instances"),
    "huge": ("programs: {web: {command: sleep 1, instances: 99999999999999999999}}\n",
             "programs.web.instances"),
    "huge duration": ("programs: {web: {command: sleep 1, start_seconds: 1e400}}\n",
                      "programs.web.start_seconds"),
    "list for a map": ("programs: [web]\n", "programs"),
    "unknown key": ("programs: {web: {command: sleep 1, restrat: {}}}\n", "restrat"),
    "duplicate key": ("programs: {web: {command: a}}\nprograms: {}\n", "appears twice"),
    "alias bomb": ("l0: &l0 [x]\n" + BOMB + "programs: *l8\n", "aliases are expanded"),
    "deep nesting": ("programs: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    "binary": ("\x00\x01\x02programs:\n", "not valid YAML"),
}


def start(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "procpilot.controller.cli", "--config.file", str(path),
         "--web.listen-address", "127.0.0.1:0", "--control.socket", str(path) + ".sock"],
        capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_start_up_refuses_it_with_the_key(tmp_path: Path, name: str) -> None:
    text, key = CORPUS[name]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = start(path)
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr and key in result.stderr
    assert "Traceback" not in result.stderr


def test_a_50_mb_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as f:
        f.write("programs: {}\n")
        f.write("# padding\n" * (5 << 20))
    result = start(path)
    assert result.returncode == 2
    assert "larger than 8 MiB" in result.stderr


def test_a_running_controller_keeps_its_programs_through_every_bad_reload(
    tmp_path: Path,
) -> None:
    programs = {"web": {"command": "sleep 1000", "start_seconds": "200ms"}}
    with running(tmp_path, programs) as c:
        c.wait_state("web", "running")
        pid = c.instance("web")["pid"]  # type: ignore[index]
        for text, key in CORPUS.values():
            c.config_path.write_text(text)
            answer = c.ctl("reload")
            assert not answer["ok"] and key in answer["error"], answer
        assert c.instance("web")["pid"] == pid  # type: ignore[index]
        assert c.metric("procpilot_controller_config_reloads_total",
                        result="failure") == len(CORPUS)
