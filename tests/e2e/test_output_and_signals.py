"""With real processes: stderr kept apart from stdout, timestamped lines, and procpilotctl
signal reaching an instance's process group."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.controller import running
from tests.support.service import wait_for

pytestmark = pytest.mark.timeout(120)
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "


def test_stderr_apart_and_timestamps(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    programs = {"talk": {"command": ["sh", "-c", "echo to out; echo to err >&2; "
                                     "printf 'no newline'; exec sleep 1000"],
                         "start_seconds": "100ms",
                         "logs": {"directory": str(logs), "stderr": "separate",
                                  "timestamps": True}}}
    with running(tmp_path, programs) as c:
        c.wait_state("talk", "running")
        out, err = logs / "talk-0.log", logs / "talk-0.err.log"
        wait_for(lambda: err.exists() and err.read_text(), what="stderr written")
        assert re.fullmatch(f"{STAMP}to err\n", err.read_text())
        assert c.ok("logs", target="talk") == {"files": [str(out), str(err)]}
    # the unfinished last line is written, stamped and ended, when the pipe closes
    assert re.fullmatch(f"{STAMP}to out\n{STAMP}no newline\n", out.read_text())


def test_procpilotctl_signal_reaches_the_process_group(tmp_path: Path) -> None:
    got = tmp_path / "got"
    # The shell's own child (sleep) gets the signal too and dies of it; the shell traps it.
    script = f"trap 'echo hup >> {got}' HUP; while :; do sleep 0.05; done"
    programs = {"hup": {"command": ["sh", "-c", script], "instances": 2,
                        "start_seconds": "100ms"}}
    with running(tmp_path, programs) as c:
        c.wait_state("hup", "running", 1)

        def ctl(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "procpilot.controller.ctl",
                                   "--control.socket", str(c.socket), *args],
                                  capture_output=True, text=True, timeout=60, check=False)

        sent = ctl("signal", "hup:1", "HUP")
        assert (sent.returncode, sent.stdout) == (0, "SIGHUP sent to hup:1\n")
        wait_for(lambda: got.exists() and got.read_text() == "hup\n", what="the trap")
        assert ctl("signal", "hup", "SIGHUP").stdout == "SIGHUP sent to hup:0, hup:1\n"
        wait_for(lambda: got.read_text() == "hup\n" * 3, what="both traps")
        c.ok("stop", target="hup:0")
        refused = ctl("signal", "hup:0", "TERM")
        assert (refused.returncode, refused.stderr) == (
            1, "procpilotctl: hup:0: no process to signal\n")
        realtime = ctl("signal", "hup:1", str(signal.SIGRTMIN + 6))  # no Signals member
        assert (realtime.returncode, realtime.stdout) == (0, "SIGRTMIN+6 sent to hup:1\n")
