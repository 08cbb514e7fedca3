"""Shared listening sockets and rolling restarts with real processes: a pool of workers on
one port rolls through procpilotctl restart --rolling and through a reload that changes it
while a client hammers the port, and not one request fails."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from procpilot.controller.runtime import SocketListener
from tests.support.controller import Controller, running
from tests.support.prometheus import free_port
from tests.support.service import wait_for

pytestmark = pytest.mark.timeout(180)
WORKER = str(Path(__file__).parents[1] / "support" / "sd_worker.py")
REQUEST_LIMIT = 200_000  # per client thread: the clients stop long before


class Results:
    def __init__(self) -> None:
        self.answers: list[str] = []  # "<version> <pid>" of each answer
        self.failures: list[str] = []


@contextmanager
def hammering(port: int, clients: int = 2) -> Iterator[Results]:
    """Clients sending request after request, each on a new connection, until the block
    ends; every error and every status but 200 is a failure."""
    results = Results()
    done = threading.Event()

    def client() -> None:
        for _ in range(REQUEST_LIMIT):
            if done.is_set():
                return
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", "/")
                answer = conn.getresponse()
                body = answer.read().decode()
                if answer.status == 200:
                    results.answers.append(body)
                else:
                    results.failures.append(f"status {answer.status}")
            except (OSError, http.client.HTTPException) as e:
                results.failures.append(repr(e))
            finally:
                conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        yield results
    finally:
        done.set()
        for t in threads:
            t.join(30)


def pids(c: Controller) -> set[int]:
    return {i["pid"] for i in c.status()["web"]["instances"]}


def settled(c: Controller, old: set[int]) -> bool:
    """Every instance ready in a process that is not one of old, and nothing replacing."""
    instances = c.status()["web"]["instances"]
    return all(i["state"] == "running" and i["ready"] and i["pid"] not in old
               and i["replacing"] is None for i in instances)


def test_a_socket_sharing_pool_rolls_under_load_without_a_failed_request(
    tmp_path: Path,
) -> None:
    port = free_port()
    worker: dict[str, Any] = {
        "command": [sys.executable, WORKER, "serve"], "instances": 3, "ready": "notify",
        "sockets": [{"name": "http", "listen": f"127.0.0.1:{port}"}],
        "environment": {"VERSION": "1"},
        "limits": {"nofile": 1024},  # one more step in the exec chain before the program
    }
    with running(tmp_path, {"web": worker}) as c:
        wait_for(lambda: settled(c, set()), what="three ready workers")
        with hammering(port) as results:
            wait_for(lambda: len(results.answers) > 10, what="the first answers")
            before = pids(c)
            ctl = subprocess.run(
                [sys.executable, "-m", "procpilot.controller.ctl", "--control.socket",
                 str(c.socket), "restart", "web", "--rolling"],
                capture_output=True, text=True, timeout=120, check=False)
            assert (ctl.returncode, ctl.stdout) == (0, "web: 3 of 3 instances replaced\n")
            assert settled(c, before)
            rolled = pids(c)
            c.write_config({"web": {**worker, "environment": {"VERSION": "2"}}})
            c.ok("reload")
            wait_for(lambda: settled(c, rolled), what="the reload rolled out")
            seen = len(results.answers)
            wait_for(lambda: len(results.answers) > seen + 10, what="answers after it")
        assert results.failures == []
        served_by = {int(a.split()[1]) for a in results.answers}
        assert served_by & before and served_by & rolled  # each generation served
        assert results.answers[-1].startswith("2 ")
        assert c.metric("procpilot_program_restarts_total", program="web",
                        reason="manual") == 6
        wait_for(lambda: "rollout done" in c.stderr(), what="the reload's rollout logged")


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_the_program_at_the_end_of_the_exec_chain_gets_its_sockets_and_its_pid(
    tmp_path: Path,
) -> None:
    """Cell entry, rlimits, the socket step and setpriv all exec in place: LISTEN_PID is
    the pid of the program that runs in the end, and its sockets are fds 3 and 4."""
    logs = tmp_path / "logs"
    report = ('echo "pid=$$ LISTEN_PID=$LISTEN_PID LISTEN_FDS=$LISTEN_FDS '
              'LISTEN_FDNAMES=$LISTEN_FDNAMES uid=$(id -u)"; '
              "for fd in 3 4 5; do echo fd$fd=$(readlink /proc/$$/fd/$fd); done; "
              "exec sleep 1000")
    sock = tmp_path / "admin.sock"
    programs = {"probe": {
        "command": ["sh", "-c", report], "user": "nobody", "limits": {"nofile": 512},
        "sockets": [{"name": "http", "listen": f"127.0.0.1:{free_port()}"},
                    {"name": "admin", "listen": f"unix:{sock}"}],
        "logs": {"directory": str(logs)}, "start_seconds": "200ms"}}
    with running(tmp_path, programs) as c:
        pid = c.wait_state("probe", "running")["pid"]
        text = wait_for(lambda: "fd5" in (t := (logs / "probe-0.log").read_text()) and t,
                        what="the report")
        nobody = subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True,
                                check=True).stdout.strip()
        assert f"LISTEN_PID={pid} LISTEN_FDS=2 LISTEN_FDNAMES=http:admin uid={nobody}" in text
        # (fd 5 is the pipe of the shell's own $(...), if anything: not a third socket)
        assert re.search(r"fd3=socket:\[\d+\]\nfd4=socket:\[\d+\]\nfd5=(?!socket)", text)
        assert sock.exists()
    assert not sock.exists()  # removed with the controller's copy


def test_a_socket_released_by_a_rollout_is_closed_once(tmp_path: Path) -> None:
    """A listener closed when its config dropped it, closed again at shutdown, must not
    unlink the socket file a later listener bound at the same path."""
    address = f"unix:{tmp_path / 'web.sock'}"
    dropped = SocketListener(address)
    dropped.close()
    assert dropped.closed
    successor = SocketListener(address)
    dropped.close()
    assert (tmp_path / "web.sock").exists() and not successor.closed
    successor.close()
    assert not (tmp_path / "web.sock").exists()
