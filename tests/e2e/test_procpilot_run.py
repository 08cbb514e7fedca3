"""procpilot-run as a user runs it: a real process tree in a real cell, the report on stderr."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from procpilot.controller.isolation import Backend, Limits, choose, kill_and_wait
from procpilot.controller.run import parse_cores
from tests.support.controller import alive
from tests.support.service import wait_for

RUN = [sys.executable, "-m", "procpilot.controller.run"]
# Counts one kind of signal, then exits with 10 + how many arrived in the next 0.3 s.
COUNTER = """
import signal, sys, time
seen = 0
def count(number, frame):
    global seen
    seen += 1
signal.signal(signal.SIG{name}, count)
print("ready", flush=True)
while not seen:
    time.sleep(0.01)
time.sleep(0.3)
sys.exit(10 + seen)
"""


@pytest.fixture(autouse=True, scope="module")
def _remove_the_runs_root() -> Iterator[None]:
    """procpilot-run leaves its (shared) root in place; remove it if these tests left it empty."""
    yield
    if os.geteuid() == 0:
        choose("auto", "run").close()


def run(*args: str, timeout: float = 60) -> tuple[int, bytes, dict[str, Any]]:
    """procpilot-run --json args: (status, stdout, the JSON report)."""
    done = subprocess.run([*RUN, "--json", *args], capture_output=True, timeout=timeout,
                          check=False)
    report = json.loads(done.stderr.splitlines()[-1])
    return done.returncode, done.stdout, report


def need_cgroups(kind: str | None = None) -> Backend:
    """The backend procpilot-run will pick; skip unless it is a cgroup one (enforcing kind)."""
    if os.geteuid() != 0:
        pytest.skip("creating cgroups needs root")
    backend = choose("auto", "run")
    if backend.name == "none":
        pytest.skip(f"no usable cgroups here: {'; '.join(backend.notes)}")
    if kind is not None and kind not in backend.supports:
        pytest.skip(f"{backend.name} here cannot enforce {kind} limits")
    return backend


def test_an_allocation_over_the_memory_limit_is_reported_as_oom_kill() -> None:
    need_cgroups("memory")
    status, _, report = run("--memory", "50MiB", "--", sys.executable, "-c",
                            "b = b'x' * (200 << 20)")
    assert status == 128 + signal.SIGKILL
    assert report["reason"] == "oom_kill" and report["oom_kills"] == 1
    assert report["exit_code"] == status and report["signal"] == "SIGKILL"
    assert report["peak_memory_source"] == "cgroup"
    assert 0 < report["peak_memory_bytes"] <= 50 << 20
    assert "memory" in report["kernel_enforced"]


def test_a_timeout_kills_the_whole_cell_and_exits_124() -> None:
    need_cgroups("cpu")
    done = subprocess.run(
        [*RUN, "--json", "--timeout", "2s", "--cpu", "50%", "--",
         "sh", "-c", "sleep 300 & echo $!; while :; do :; done"],
        capture_output=True, timeout=60, check=False)
    report = json.loads(done.stderr.splitlines()[-1])
    assert done.returncode == 124
    assert report["reason"] == "timeout" and report["exit_code"] == 124
    assert not alive(int(done.stdout))  # the background sleep went with the cell
    assert b"could not remove" not in done.stderr
    assert report["kernel_enforced"] == ["cpu"]
    assert 0 < report["cpu_seconds"] < report["wall_seconds"]


@pytest.mark.parametrize("timeout", ["1ms", "10ms"])
def test_a_timeout_before_the_command_entered_its_cell_still_kills_it(timeout: str) -> None:
    # The deadline may pass while the enter prefix has not yet moved itself into the cell:
    # the main process must be killed anyway, not be waited for.
    status, _, report = run("--timeout", timeout, "--", "sleep", "5")
    assert status == 124 and report["reason"] == "timeout"
    assert report["wall_seconds"] < 2.5, report


@pytest.mark.parametrize(("script", "status", "reason", "name"), [
    ("exit 0", 0, "exit", None),
    ("exit 3", 3, "exit", None),
    ("kill -TERM $$", 128 + signal.SIGTERM, "signal", "SIGTERM"),
])
def test_exit_codes_are_the_commands(script: str, status: int, reason: str,
                                     name: str | None) -> None:
    got, _, report = run("--", "sh", "-c", script)
    assert got == status
    assert (report["exit_code"], report["reason"], report["signal"]) == (status, reason, name)


def test_stdout_is_untouched_and_the_report_is_the_last_line_of_stderr() -> None:
    done = subprocess.run(
        [*RUN, "--json", "--", "sh", "-c", r"printf 'a\0b\n\nlast'; echo oops >&2"],
        capture_output=True, timeout=60, check=False)
    assert done.stdout == b"a\0b\n\nlast"
    lines = done.stderr.decode().splitlines()
    assert "oops" in lines[:-1]
    assert json.loads(lines[-1])["exit_code"] == 0


def test_text_report_and_isolation_none() -> None:
    done = subprocess.run([*RUN, "--isolation", "none", "--memory", "1GiB", "--", "true"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    first, last = done.stderr.splitlines()
    assert "none cannot enforce the memory limit" in first
    assert last.startswith("procpilot-run: exit_code=0 reason=exit ")
    assert "backend=none" in last


def test_background_processes_die_with_the_main_process() -> None:
    status, out, report = run("--", "sh", "-c", "sleep 300 & echo $!")
    assert status == 0 and report["reason"] == "exit"
    pid = int(out)
    if report["backend"] != "none":
        assert not alive(pid)
    else:
        os.kill(pid, signal.SIGKILL)


def test_a_signal_to_procpilot_run_reaches_the_command_once() -> None:
    proc = subprocess.Popen([*RUN, "--", sys.executable, "-c", COUNTER.format(name="TERM")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 11


def test_ctrl_c_on_a_terminal_reaches_the_command_once() -> None:
    pid, terminal = pty.fork()  # the child leads a session on a new terminal
    if pid == 0:
        os.execv(RUN[0], [*RUN, "--", sys.executable, "-c", COUNTER.format(name="INT")])
    try:
        seen = b""
        while b"ready" not in seen:
            seen += os.read(terminal, 1024)
        os.write(terminal, b"\x03")  # the terminal sends SIGINT to its foreground group
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 11
    finally:
        os.close(terminal)


# A setsid()'d sleeper and the main shell, their pids in files $1 and $2.
NESTED = 'setsid sh -c "echo \\$\\$ >$1; exec sleep 401" & echo $$ >$2; exec sleep 401'


def test_a_timeout_kills_a_nested_procpilot_runs_cell_and_removes_the_tree(
        tmp_path: Path) -> None:
    backend = need_cgroups()
    files = [tmp_path / "escapee", tmp_path / "main"]
    outer = subprocess.Popen(
        [*RUN, "--timeout", "3s", "--", *RUN, "--", "sh", "-c", NESTED, "sh", *map(str, files)],
        stderr=subprocess.PIPE)
    _, err = outer.communicate(timeout=60)
    pids = [int(f.read_text()) for f in files if f.exists() and f.read_text().strip()]
    try:
        assert outer.returncode == 124, err
        assert len(pids) == 2, "the inner command did not start within the timeout"
        wait_for(lambda: not any(alive(p) for p in pids), what="the nested processes gone")
        assert b"could not remove" not in err
        assert not [c.name for c in backend.leftovers()
                    if c.name.startswith(f"run-{outer.pid}-")]
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_cells_of_a_killed_procpilot_run_are_swept() -> None:
    backend = need_cgroups()
    stale = backend.create("run-999999999-1", Limits())  # no such pid: its owner is gone
    sleeper = subprocess.Popen([*stale.enter_argv(), "sleep", "300"])
    try:
        wait_for(lambda: sleeper.pid in stale.pids())
        assert run("--", "true")[0] == 0
        assert sleeper.wait(timeout=60) == -signal.SIGKILL
        assert not any(os.path.exists(d) for d in stale.dirs)
    finally:
        kill_and_wait(stale)
        stale.remove()
        sleeper.wait()


def test_the_sweep_spares_a_controllers_cell_under_a_shared_explicit_root(
        explicit_root: str) -> None:
    controller = choose("auto", "/run/procpilot/control.sock", root=explicit_root)
    if controller.name == "none":
        pytest.skip(f"no usable cgroups here: {'; '.join(controller.notes)}")
    cell = controller.create("run-999999999-1", Limits())  # named like a dead run's cell
    sleeper = subprocess.Popen([*cell.enter_argv(), "sleep", "300"])
    try:
        wait_for(lambda: sleeper.pid in cell.pids())
        assert run("--cgroup-root", explicit_root, "--", "true")[0] == 0
        assert sleeper.poll() is None
        assert sleeper.pid in cell.pids()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("args", [
    ["--memory", "lots", "--", "true"],
    ["--cpu", "0", "--", "true"],
    ["--cpu", "0.001", "--", "true"],
    ["--cpu", "1" + "0" * 400, "--", "true"],
    ["--bogus", "--", "true"],
    ["--isolation", "cgroup3", "--", "true"],
    [],
    ["--"],
    ["--isolation", "cgroup2", "--cgroup-root", "/procpilot-test-missing", "--", "true"],
    ["--isolation", "cgroup1", "--cgroup-root", "/procpilot-test-missing", "--", "true"],
    ["--cgroup-root", "/procpilot-test-missing", "--memory", "10MiB", "--", "true"],
])
def test_usage_errors_and_impossible_backends_exit_2(args: list[str]) -> None:
    done = subprocess.run([*RUN, *args], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip()
    if "--cgroup-root" in args:
        assert "/procpilot-test-missing: does not exist" in done.stderr


def test_missing_and_unexecutable_commands(tmp_path: Path) -> None:
    done = subprocess.run([*RUN, "--", "procpilot-no-such-command"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 127 and "command not found" in done.stderr
    plain = tmp_path / "plain"
    plain.write_text("echo hi\n")
    done = subprocess.run([*RUN, "--", str(plain)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 126 and "not executable" in done.stderr


def test_cores_take_a_number_or_a_percentage() -> None:
    assert parse_cores("0.5") == parse_cores("50%") == 0.5
    assert parse_cores("2") == 2.0
    assert parse_cores("1%") == 0.01
    for bad in ("0", "-1", "half", "50%%", "", "inf", "1" + "0" * 400, "0.001", "0.5%"):
        with pytest.raises(ValueError):
            parse_cores(bad)
