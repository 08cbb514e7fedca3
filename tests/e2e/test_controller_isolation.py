"""The controller with real cgroups: kernel limits, nothing escaping stop, restart or a
SIGKILL of the controller, and exact OOM attribution.

This machine has cgroup v1 (memory, cpu, cpuacct, pids, freezer) and a v2 hierarchy without
controllers; auto picks v1, and forcing cgroup2 gives containment without limits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procpilot.controller.isolation import IsolationError, choose, root_name
from procpilot.controller.isolation.probe import gather
from procpilot.core.procfs import FS
from tests.support.controller import Controller, alive, running
from tests.support.service import wait_for

pytestmark = pytest.mark.timeout(180)
FAST = {"start_seconds": "300ms", "restart": {"delay": "200ms"},
        "stop": {"timeout": "2s"}}


def usable(backend: str) -> str | None:
    """Why the backend cannot be used here, or None when it can."""
    if os.geteuid() != 0:
        return "making cgroups needs root"
    try:
        chosen = choose(backend, f"probe-{os.getpid()}")
    except IsolationError as e:
        return str(e)
    chosen.close()
    return None if chosen.name != "none" else "no cgroup backend on this machine"


def needs(backend: str) -> pytest.MarkDecorator:
    reason = usable(backend)
    return pytest.mark.skipif(reason is not None, reason=f"{backend}: {reason}")


def anon_rss(pid: int) -> int:
    """Anonymous resident memory: what the memory limit charges for this process. (Pages of
    the interpreter's files were charged to whoever touched them first, outside the cell.)"""
    try:
        with open(f"/proc/{pid}/status") as f:
            kib = next(line for line in f if line.startswith("RssAnon:")).split()[1]
    except (OSError, StopIteration):
        return 0
    return int(kib) * 1024


# Allocates 20 MiB every 20 ms and touches it: RSS grows about 1 GiB a second.
GROWER = ("import time\nheld = []\nwhile True:\n    held.append(bytearray(20 << 20))\n"
          "    time.sleep(0.02)\n")
LIMIT = 100 * 2**20


@needs("auto")
def test_the_kernel_oom_kills_at_the_limit_and_the_reason_is_oom_kill(tmp_path: Path) -> None:
    programs = {"grower": {"command": [sys.executable, "-c", GROWER], **FAST,
                           "limits": {"memory": "100MiB"}}}
    with running(tmp_path, programs) as c:
        peak = 0
        deadline = time.monotonic() + 60
        while not c.metric("procpilot_program_restarts_total", program="grower",
                           reason="oom_kill"):
            assert time.monotonic() < deadline, "no oom_kill restart"
            inst = c.instance("grower")
            if inst and inst["pid"]:
                peak = max(peak, anon_rss(inst["pid"]))
            time.sleep(0.005)
        assert 0 < peak <= LIMIT
        inst = c.instance("grower")
        assert inst is not None and inst["last_exit"]["reason"] == "oom_kill"
        assert c.metric("procpilot_program_restarts_total", program="grower",
                        reason="memory_limit") == 0
        kept = [lim for lim in c.status()["grower"]["limits"] if lim["kind"] == "memory"]
        assert kept == [{"kind": "memory", "value": LIMIT, "enforced": "kernel"}]


ESCAPER = ("setsid sh -c 'sleep 1000 & echo $! > {pidfile}; wait' & "
           "exec sleep 1000")  # the grandchild leaves the process group and the session


def escapee(pidfile: Path) -> int:
    text = wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(),
                    what="the escaping grandchild")
    return int(text)


@pytest.mark.parametrize("backend", [
    pytest.param("cgroup1", marks=needs("cgroup1")),
    pytest.param("cgroup2", marks=needs("cgroup2")),
])
def test_a_setsid_grandchild_does_not_survive_restart_or_stop(tmp_path: Path,
                                                              backend: str) -> None:
    pidfile = tmp_path / "escapee"
    programs = {"escaper": {"command": ESCAPER.format(pidfile=pidfile), "shell": True,
                            **FAST}}
    with running(tmp_path, programs, isolation={"backend": backend}) as c:
        first = escapee(pidfile)
        pidfile.unlink()
        c.ok("restart", target="escaper")
        wait_for(lambda: not alive(first), what="the escapee gone after restart")
        second = escapee(pidfile)
        c.ok("stop", target="escaper")
        wait_for(lambda: not alive(second), what="the escapee gone after stop")
        assert c.metric("procpilot_controller_isolation_info", backend=backend) == 1


@needs("auto")
def test_after_a_sigkill_of_the_controller_its_restart_kills_the_leftovers(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "escapee"
    programs = {"escaper": {"command": ESCAPER.format(pidfile=pidfile), "shell": True,
                            **FAST}}
    c = Controller(tmp_path, programs)
    try:
        c.start()
        orphan = escapee(pidfile)
        c.signal(9)
        c.wait_exit()
        time.sleep(0.5)
        assert alive(orphan)  # the parent-death signal does not reach it
        c.write_config({})
        c.start()
        wait_for(lambda: not alive(orphan), what="the leftover killed at start-up")
        assert (c.metric("procpilot_controller_leftover_processes_killed_total") or 0) >= 1
        assert "killed what an earlier controller left" in c.stderr()
    finally:
        c.stop()


def cell_roots(identity: str) -> list[str]:
    """Where a controller of this identity makes its cells' roots, in every hierarchy."""
    facts = gather(FS.at())
    places = [*([facts.unified] if facts.unified else []), *facts.v1.values()]
    return [os.path.join(p.directory, root_name(identity)) for p in places if p.directory]


@needs("auto")
def test_a_start_that_fails_on_a_taken_port_leaves_no_cell_roots(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("programs: {}\n")
    socket_path = str(tmp_path / "s.sock")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "procpilot.controller.cli", "--config.file", str(config),
             "--control.socket", socket_path, "--web.listen-address", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=60, check=False)
    left = [r for r in cell_roots(socket_path) if os.path.exists(r)]
    for root in left:  # empty: nothing started
        os.rmdir(root)
    assert result.returncode != 0 and "cannot serve" in result.stderr, result.stderr
    assert left == []


def cpu_seconds(c: Controller, program: str) -> float:
    return sum(c.metric("procpilot_program_cpu_seconds_total", program=program, mode=m) or 0.0
               for m in ("user", "system"))


@needs("auto")
def test_a_cpu_burner_gets_a_quarter_core(tmp_path: Path) -> None:
    programs = {"burner": {"command": [sys.executable, "-c", "while True: pass"], **FAST,
                           "limits": {"cpu": "25%"}}}
    with running(tmp_path, programs) as c:
        c.wait_state("burner", "running")
        time.sleep(1)
        before, started = cpu_seconds(c, "burner"), time.monotonic()
        time.sleep(5)
        used = cpu_seconds(c, "burner") - before
        cores = used / (time.monotonic() - started)
        assert 0.18 <= cores <= 0.32, cores
        assert c.metric("procpilot_program_cpu_limit_cores", program="burner") == 0.25
        assert (c.metric("procpilot_program_cpu_throttled_seconds_total",
                         program="burner") or 0) > 0


# Forks as fast as it can; a fork refused at the limit is retried (a fork bomb that waits).
FORKER = ("import os, time\nwhile True:\n    try:\n        if os.fork() == 0:\n"
          "            time.sleep(100)\n            os._exit(0)\n"
          "    except OSError:\n        time.sleep(0.001)\n")


@needs("auto")
def test_a_fork_loop_stays_within_its_task_limit_and_the_controller_answers(
    tmp_path: Path,
) -> None:
    programs = {"forker": {"command": [sys.executable, "-c", FORKER], **FAST,
                           "limits": {"tasks": 20}}}
    with running(tmp_path, programs) as c:
        c.wait_state("forker", "running")
        seen = []
        for _ in range(20):
            seen.append(c.metric("procpilot_program_tasks", program="forker") or 0)
            assert c.instance("forker") is not None  # status answers throughout
            time.sleep(0.1)
        assert 1 <= max(seen) <= 20
        assert max(seen) == 20  # it did reach the limit
        assert c.metric("procpilot_program_tasks_limit", program="forker") == 20


@pytest.mark.parametrize("backend", ["cgroup1", "auto"])
def test_a_forced_backend_or_a_root_that_cannot_work_exits_2(tmp_path: Path,
                                                             backend: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"isolation: {{backend: {backend}, root: /procpilot-no-such-cgroup}}\n"
                      "programs: {}\n")
    result = subprocess.run(
        [sys.executable, "-m", "procpilot.controller.cli", "--config.file", str(config),
         "--control.socket", str(tmp_path / "s.sock"), "--web.listen-address", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert f"isolation {backend}:" in result.stderr
    assert "/procpilot-no-such-cgroup: does not exist" in result.stderr


@pytest.mark.parametrize("cpu", ["inf", "inf%", "1e400", "0.001"])
def test_a_cpu_limit_the_kernel_cannot_keep_is_refused_at_load(tmp_path: Path, cpu: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"programs: {{x: {{command: 'true', limits: {{cpu: '{cpu}'}}}}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "procpilot.controller.cli", "--config.file", str(config),
         "--control.socket", str(tmp_path / "s.sock"), "--web.listen-address", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert str(config) in result.stderr
    assert "programs.x.limits.cpu:" in result.stderr
    assert "expected a finite number of cores, at least 0.01" in result.stderr
