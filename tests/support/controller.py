"""Run procpilot-controller as a real subprocess and talk to it like procpilotctl does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from procpilot.controller import client
from procpilot.controller.isolation import IsolationError, choose, kill_and_wait
from tests.support.service import ADDRESS, parse, value, wait_for

DEADLINE = 30.0


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, ppid) of a process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of pid's children, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None and st[1] == pid:
                out.append((int(name), st[0]))
    return out


def request(path: Path, message: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """One control-socket exchange, through procpilotctl's own client code (tests send
    malformed requests too, so the message is not typed as a Request)."""
    return dict(client.request(str(path), message, timeout))  # type: ignore[arg-type]


class Controller:
    """A procpilot-controller subprocess with its config, socket and stderr in a directory."""

    def __init__(self, tmp: Path, programs: dict[str, Any], **top: Any) -> None:
        self.tmp = tmp
        self.config_path = tmp / "controller.yaml"
        self.socket = tmp / "ctl.sock"
        self.stderr_path = tmp / "controller.stderr"
        self.write_config(programs, **top)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._stderr_from = 0

    def write_config(self, programs: dict[str, Any], **top: Any) -> None:
        self.config_path.write_text(yaml.safe_dump({"programs": programs, **top}))

    def start(self, wait: bool = True) -> Controller:
        stderr = self.stderr_path.open("ab")
        self._stderr_from = stderr.tell()  # a restarted controller appends to the same file
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "procpilot.controller.cli",
             "--config.file", str(self.config_path),
             "--control.socket", str(self.socket), "--web.listen-address", "127.0.0.1:0",
             "--log.level", "debug"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )
        stderr.close()
        if wait:
            match = wait_for(lambda: ADDRESS.search(self.stderr()[self._stderr_from :]),
                             what="controller to listen")
            self.port = int(match.group(1).rpartition(":")[2])
            wait_for(lambda: "controller started" in self.stderr()[self._stderr_from :],
                     what="control socket")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def ctl(self, cmd: str, **args: Any) -> dict[str, Any]:
        return request(self.socket, {"cmd": cmd, **args})

    def ok(self, cmd: str, **args: Any) -> Any:
        answer = self.ctl(cmd, **args)
        assert answer["ok"], answer
        return answer["result"]

    def status(self) -> dict[str, dict[str, Any]]:
        return {p["program"]: p for p in self.ok("status")["programs"]}

    def instance(self, program: str, index: int = 0) -> dict[str, Any] | None:
        for inst in self.status().get(program, {}).get("instances", []):
            if inst["id"] == f"{program}:{index}":
                return dict(inst)
        return None

    def wait_state(self, program: str, state: str, index: int = 0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            inst = self.instance(program, index)
            return inst if inst is not None and inst["state"] == state else None

        result: dict[str, Any] = wait_for(reached, what=f"{program}:{index} {state}")
        return result

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=30) as r:
            text: str = r.read().decode()
        return text

    def metric(self, name: str, **labels: str) -> float | None:
        return value(parse(self.metrics()), name, **labels)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        sweep_cgroups(self.socket)


def sweep_cgroups(socket: Path) -> None:
    """Remove what a controller on this socket left in cgroups (after a SIGKILL, say), so
    test runs do not pile up cgroup directories named after their temporary sockets."""
    if os.geteuid() != 0:
        return
    try:
        backend = choose("auto", os.path.abspath(socket))
    except IsolationError:
        return
    for cell in backend.leftovers():
        kill_and_wait(cell)
        cell.remove()
    backend.close()


@contextmanager
def running(tmp: Path, programs: dict[str, Any], **top: Any) -> Iterator[Controller]:
    """``with running(tmp_path, programs) as c:`` starts a controller and always stops it."""
    controller = Controller(tmp, programs, **top)
    try:
        yield controller.start()
    finally:
        controller.stop()
