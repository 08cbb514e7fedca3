"""procpilot-controller as a whole: flags, bad config, reload, log reopen, /metrics."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.controller import Controller, running
from tests.support.service import parse, wait_for

pytestmark = pytest.mark.timeout(120)

FAST = {"start_seconds": "200ms"}


def test_bad_config_exits_2_with_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("programs:\n  web:\n    command: sleep 1\n    restrat: {}\n")
    proc = subprocess.run([sys.executable, "-m", "procpilot.controller.cli",
                           "--config.file", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "restrat" in proc.stderr


def test_config_file_flag_is_required() -> None:
    proc = subprocess.run([sys.executable, "-m", "procpilot.controller.cli"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "--config.file" in proc.stderr


def test_broken_reload_keeps_running_config(tmp_path: Path) -> None:
    programs = {"keep": {"command": "sleep 1000", **FAST}}
    with running(tmp_path, programs) as c:
        pid = c.wait_state("keep", "running")["pid"]
        c.config_path.write_text("programs:\n  keep: {command: sleep 1000, restrat: 1}\n")
        answer = c.ctl("reload")
        assert answer["ok"] is False and "restrat" in answer["error"]
        assert c.metric("procpilot_controller_config_reloads_total", result="failure") == 1
        c.signal(signal.SIGHUP)
        wait_for(lambda: c.metric("procpilot_controller_config_reloads_total",
                                  result="failure") == 2, what="second failed reload")
        assert c.metric("procpilot_controller_config_reloads_total", result="success") == 0
        assert c.metric("procpilot_controller_config_last_reload_successful") == 0
        assert c.instance("keep")["pid"] == pid  # type: ignore[index]
        loaded_at = c.metric("procpilot_controller_config_last_reload_success_timestamp_seconds")
        c.write_config(programs)
        c.ok("reload")
        assert c.metric("procpilot_controller_config_last_reload_successful") == 1
        later = c.metric("procpilot_controller_config_last_reload_success_timestamp_seconds")
        assert loaded_at is not None and later is not None and later >= loaded_at



def test_sigusr1_reopens_log_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    script = "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.05; done"
    programs = {"talk": {"command": ["sh", "-c", script], **FAST,
                         "logs": {"directory": str(logs)}}}
    with running(tmp_path, programs) as c:
        log = logs / "talk-0.log"
        wait_for(lambda: log.exists() and log.stat().st_size > 0, what="log written")
        log.rename(logs / "moved.log")
        c.signal(signal.SIGUSR1)
        wait_for(lambda: log.exists() and log.stat().st_size > 0, what="new log file")
        assert (logs / "moved.log").read_text().startswith("line 1\n")


def test_output_without_logs_goes_to_stderr_prefixed(tmp_path: Path) -> None:
    programs = {"chat": {"command": ["sh", "-c", "echo hello; echo oops >&2; sleep 1000"],
                         **FAST}}
    with running(tmp_path, programs) as c:
        wait_for(lambda: "chat:0 | hello\n" in c.stderr() and "chat:0 | oops\n" in c.stderr(),
                 what="prefixed lines")


def test_metrics_over_http_pass_promtool(tmp_path: Path) -> None:
    programs = {"web": {"command": "sleep 1000", "instances": 2, **FAST,
                        "limits": {"memory": "1GiB", "check_interval": "100ms"}},
                "bad": {"command": "false", **FAST, "restart": {"max_restarts": 0}}}
    with running(tmp_path, programs) as c:
        c.wait_state("web", "running", 1)
        c.wait_state("bad", "fatal")
        wait_for(lambda: (c.metric("procpilot_program_resident_memory_bytes",
                                   program="web") or 0) > 0, what="RSS sampled")
        text = c.metrics()
        for name in ("procpilot_program_state", "procpilot_program_instances",
                     "procpilot_program_desired_instances", "procpilot_program_restarts_total",
                     "procpilot_program_exit_code", "procpilot_program_backoff_seconds",
                     "procpilot_program_start_time_seconds",
                     "procpilot_program_resident_memory_bytes",
                     "procpilot_program_memory_limit_bytes", "procpilot_program_cpu_seconds_total",
                     "procpilot_controller_reaped_processes_total",
                     "procpilot_controller_config_reloads_total",
                     "procpilot_controller_build_info"):
            assert f"\n{name}" in text, name
        assert c.metric("procpilot_program_instances", program="web") == 2
        assert c.metric("procpilot_program_memory_limit_bytes", program="bad") is None
        promtool = shutil.which("promtool")
        if promtool is None:
            pytest.skip("promtool not installed")
        check = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                               capture_output=True, timeout=60, check=False)
        assert check.returncode == 0, check.stdout + check.stderr


def test_shutdown_command_exits_0(tmp_path: Path) -> None:
    c = Controller(tmp_path, {"x": {"command": "sleep 1000", **FAST}}).start()
    try:
        c.wait_state("x", "running")
        assert c.ok("shutdown") == "shutting down"
        assert c.wait_exit() == 0
        assert not c.socket.exists()
    finally:
        c.stop()


def test_each_instance_reports_its_own_memory(tmp_path: Path) -> None:
    # 8 MiB each: cgroup memory statistics are batched per CPU, so a process of a few pages
    # may show none yet.
    holder = "b = bytearray(8 << 20); import time; time.sleep(1000)"
    programs = {"pair": {"command": [sys.executable, "-c", holder], "instances": 2, **FAST}}
    with running(tmp_path, programs) as c:
        for index in (0, 1):
            c.wait_state("pair", "running", index)
        samples = wait_for(lambda: (s := parse(c.metrics())) and all(
            s.get(("procpilot_program_instance_resident_memory_bytes",
                   (("index", str(i)), ("program", "pair"))), 0) >= 8 << 20
            for i in (0, 1)) and s, what="per-instance memory series")
        each = [samples[("procpilot_program_instance_resident_memory_bytes",
                         (("index", str(i)), ("program", "pair")))] for i in (0, 1)]
        total = samples[("procpilot_program_resident_memory_bytes", (("program", "pair"),))]
        assert sum(each) == total


def test_sigterms_while_it_exits_still_end_in_status_0(tmp_path: Path) -> None:
    """A second stop request (Ctrl-C, then the wrapper's SIGTERM) never turns into -15."""
    programs = {"slow": {"command": ["sh", "-c", "trap '' TERM; sleep 1000"], **FAST,
                         "stop": {"timeout": "500ms"}}}
    c = Controller(tmp_path, programs).start()
    c.wait_state("slow", "running")
    assert c.proc is not None
    while c.proc.poll() is None:
        c.signal(signal.SIGTERM)
        time.sleep(0.002)
    assert c.proc.returncode == 0
