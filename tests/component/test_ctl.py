"""procpilotctl against a tiny real Unix-socket peer that speaks the control protocol."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from procpilot.controller import ctl, render

Answer = Callable[[dict[str, Any]], bytes]


class Peer:
    """Serves one JSON line per connection with ``answer`` and records the requests."""

    def __init__(self, path: str, answer: Answer) -> None:
        self.requests: list[dict[str, Any]] = []
        peer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request = json.loads(self.rfile.readline())
                peer.requests.append(request)
                self.wfile.write(answer(request))

        self.path = path
        self.server = socketserver.ThreadingUnixStreamServer(path, Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode() + b"\n"


NOW = 1_700_000_000.0
STATUS = {
    "programs": [
        {
            "program": "web",
            "state": "backoff",
            "desired": 2,
            "pool": None,
            "instances": [
                {"id": "web:0", "state": "running", "pid": 4242, "uptime_seconds": 192.4,
                 "restarts": 0, "rss_bytes": 25690112, "backoff_seconds": 0, "last_exit": None,
                 "ready": True, "status_text": "serving 3 requests"},
                {"id": "web:1", "state": "backoff", "pid": None, "uptime_seconds": None,
                 "restarts": 3, "rss_bytes": None, "backoff_seconds": 2.2,
                 "last_exit": {"code": None, "signal": 9, "reason": "memory_limit",
                               "time": NOW - 5}, "ready": True, "replacing": 4100},
            ],
            "limits": [{"kind": "memory", "value": 104857600, "enforced": "polled"},
                       {"kind": "cpu", "value": 0.5, "enforced": "not enforced"},
                       {"kind": "umask", "value": "0027", "enforced": "process"}],
        },
        {
            "program": "workers",
            "state": "running",
            "desired": 1,
            "pool": {"min": 1, "max": 4, "pinned": None, "utilization": 0.43, "desired": 1},
            "instances": [
                {"id": "workers:0", "state": "running", "pid": 77, "uptime_seconds": 3700,
                 "restarts": 12, "rss_bytes": 512, "backoff_seconds": 0,
                 "last_exit": {"code": 1, "signal": None, "reason": "failed_start",
                               "time": NOW - 3700}},
            ],
        },
        {"program": "idle", "state": "stopped", "desired": 0, "pool": None, "instances": [],
         "waiting_for": ["web"]},
    ]
}


def default_answer(request: dict[str, Any]) -> bytes:
    if request["cmd"] == "status":
        return reply({"ok": True, "result": STATUS})
    if request.get("target") == "nope":
        return reply({"ok": False, "error": "no program named nope"})
    return reply({"ok": True, "result": f"{request['cmd']} {request.get('target', '')}".strip()})


@pytest.fixture
def sockdir() -> Iterator[str]:
    # Short path: Unix socket paths are limited to about 108 bytes.
    path = tempfile.mkdtemp(prefix="ppctl-", dir="/tmp")
    yield path
    shutil.rmtree(path)


@pytest.fixture
def peer(sockdir: str) -> Iterator[Peer]:
    p = Peer(os.path.join(sockdir, "s"), default_answer)
    yield p
    p.close()


def run(peer: Peer, *args: str) -> int:
    return ctl.main(["--control.socket", peer.path, *args])


def test_status_table(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(peer, "status") == 0
    assert peer.requests == [{"cmd": "status"}]
    lines = capsys.readouterr().out.splitlines()
    header = lines[0]
    assert header.split() == list(render.COLUMNS)
    starts = [header.index(c) for c in render.COLUMNS]
    for line in lines[1:5]:  # aligned: every column starts under its heading
        for start in starts[1:]:
            assert line[start - 2 : start] == "  " and line[start] != " "
    web0, web1, workers0, idle = (line.split(None, 8) for line in lines[1:5])
    assert web0 == ["web", "web:0", "running", "yes", "4242", "3m12s", "0", "24.5MiB", "-"]
    assert web1[:8] == ["web", "web:1", "backoff(2s)", "yes", "-", "-", "3", "-"]
    assert re.fullmatch(r"SIGKILL, memory_limit, \S+ ago", web1[8])
    assert workers0[3] == "-"  # a controller before readiness did not say
    assert workers0[5] == "1h1m40s" and workers0[7] == "512B"
    assert re.fullmatch(r"exit 1, failed_start, \S+ ago", workers0[8])
    assert idle == ["idle", "-", "stopped", "-", "-", "-", "-", "-", "-"]
    assert lines[5:] == [
        "web:0: serving 3 requests",
        "web:1: pid 4100 serves until this instance is ready (rolling restart)",
        "idle: waiting for web to be ready",
        "pool workers: auto, desired 1 (min 1, max 4), utilization 0.43",
        "limits web: memory 100.0MiB (polled), cpu 0.5 (not enforced), umask 0027 (process)"]


def test_status_ages_are_relative_to_now() -> None:
    rows = render.status_rows(STATUS, now=NOW)  # type: ignore[arg-type]
    assert rows[1][8] == "SIGKILL, memory_limit, 5s ago"
    assert rows[2][8] == "exit 1, failed_start, 1h1m40s ago"


def test_status_json(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(peer, "--json", "status") == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "result": STATUS}


@pytest.mark.parametrize(
    ("args", "sent"),
    [
        (["start", "web"], {"cmd": "start", "target": "web"}),
        (["stop", "web:1"], {"cmd": "stop", "target": "web:1"}),
        (["restart", "all"], {"cmd": "restart", "target": "all"}),
        (["restart", "--rolling", "web"], {"cmd": "restart", "target": "web", "rolling": True}),
        (["signal", "web:1", "hup"], {"cmd": "signal", "target": "web:1", "signal": 1}),
        (["signal", "web", "10"], {"cmd": "signal", "target": "web", "signal": 10}),
        (["reload"], {"cmd": "reload"}),
        (["shutdown"], {"cmd": "shutdown"}),
        (["scale", "workers", "3"], {"cmd": "scale", "target": "workers", "count": 3}),
        (["scale", "workers", "auto"], {"cmd": "scale", "target": "workers", "count": "auto"}),
    ],
)
def test_commands_send_protocol_requests(
    peer: Peer, capsys: pytest.CaptureFixture[str], args: list[str], sent: dict[str, Any]
) -> None:
    assert run(peer, *args) == 0
    assert peer.requests == [sent]
    assert capsys.readouterr().out.startswith(sent["cmd"])


def test_refused_exits_1(peer: Peer, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(peer, "stop", "nope") == 1
    assert "no program named nope" in capsys.readouterr().err
    assert run(peer, "--json", "stop", "nope") == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


@pytest.mark.parametrize(
    "args",
    [[], ["frobnicate"], ["stop"], ["stop", "web:x"], ["stop", "-web"], ["scale", "web", "-1"],
     ["scale", "web:0", "2"], ["logs", "all"], ["--timeout", "soon", "status"],
     ["signal", "web"], ["signal", "web", "SIGNOPE"], ["signal", "web", "999"],
     ["stop", "--rolling", "web"]],
)
def test_bad_usage_exits_2(peer: Peer, args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run(peer, *args)
    assert info.value.code == 2
    assert peer.requests == []


def test_missing_socket_exits_3(sockdir: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["--control.socket", os.path.join(sockdir, "absent"), "status"]) == 3
    assert "no such socket" in capsys.readouterr().err


def test_a_directory_for_a_socket_is_named_as_such(
    sockdir: str, capsys: pytest.CaptureFixture[str],
) -> None:
    assert ctl.main(["--control.socket", sockdir, "status"]) == 3
    assert "is a directory, not the controller's socket" in capsys.readouterr().err


def test_refused_connection_exits_3(sockdir: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = os.path.join(sockdir, "dead")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)  # bound, never listening: like a controller that died
        assert ctl.main(["--control.socket", path, "status"]) == 3
    assert "connection refused" in capsys.readouterr().err


def test_permission_denied_exits_3(peer: Peer) -> None:
    path = peer.path
    if os.getuid() != 0:
        os.chmod(path, 0)
        assert ctl.main(["--control.socket", path, "status"]) == 3
        return
    # Root ignores file modes, so ask as nobody: the socket's directory is mode 0700.
    child = os.fork()
    if child == 0:
        code = 99
        try:
            os.setgid(65534)
            os.setuid(65534)
            code = ctl.main(["--control.socket", path, "status"])
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    assert peer.requests == []


@pytest.mark.parametrize("answer", [b"", b"not json\n", b"[1]\n", b'{"result": 1}\n'])
def test_garbled_answer_exits_3(sockdir: str, answer: bytes) -> None:
    p = Peer(os.path.join(sockdir, "g"), lambda _: answer)
    try:
        assert run(p, "status") == 3
    finally:
        p.close()


def test_silent_peer_times_out_with_3(sockdir: str, capsys: pytest.CaptureFixture[str]) -> None:
    release = threading.Event()

    def hang(_: dict[str, Any]) -> bytes:
        release.wait(30)
        return b""

    p = Peer(os.path.join(sockdir, "h"), hang)
    try:
        assert run(p, "--timeout", "200ms", "status") == 3
        assert "no answer within 200ms" in capsys.readouterr().err
    finally:
        release.set()
        p.close()


def logs_peer(sockdir: str, files: list[str]) -> Peer:
    return Peer(
        os.path.join(sockdir, "l"),
        lambda req: reply({"ok": True, "result": {"files": files}}),
    )


def test_logs_prints_files(sockdir: str, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    files = [os.path.join(sockdir, f"web-{i}.log") for i in range(2)]
    Path(files[0]).write_text("a1\na2\na3\n")
    Path(files[1]).write_text("b1\n")
    p = logs_peer(sockdir, files)
    try:
        assert run(p, "logs", "web") == 0
        assert capfdbinary.readouterr().out == b"web:0 | a1\nweb:0 | a2\nweb:0 | a3\nweb:1 | b1\n"
        assert run(p, "logs", "web", "-n", "1") == 0
        assert capfdbinary.readouterr().out == b"web:0 | a3\nweb:1 | b1\n"
        assert p.requests[0] == {"cmd": "logs", "target": "web"}
    finally:
        p.close()


def test_logs_single_file_unprefixed(
    sockdir: str, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = os.path.join(sockdir, "web-0.log")
    Path(path).write_bytes(b"one\ntwo\nno newline")
    p = logs_peer(sockdir, [path])
    try:
        assert run(p, "logs", "web", "-n", "2") == 0
        assert capfdbinary.readouterr().out == b"two\nno newline"
    finally:
        p.close()


class Output:
    """Everything a child wrote to its stdout pipe so far, read without blocking."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.stream = proc.stdout
        os.set_blocking(self.stream.fileno(), False)
        self.seen = b""

    def wait_for(self, expected: bytes, timeout: float = 30) -> bytes:
        """Wait until ``expected`` was written (generous timeout, nothing timed)."""
        deadline = time.monotonic() + timeout
        while expected not in self.seen:
            assert time.monotonic() < deadline, f"never saw {expected!r}; got {self.seen!r}"
            chunk = self.stream.read()
            if chunk:
                self.seen += chunk
            else:
                time.sleep(0.05)
        return self.seen


def follow_logs(peer: Peer, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "procpilot.controller.ctl", "--control.socket",
         peer.path, "logs", "web", "-f", *args],
        stdout=subprocess.PIPE,
    )


def test_logs_follow_across_rotation(sockdir: str) -> None:
    path = os.path.join(sockdir, "web-0.log")
    Path(path).write_text("old\n")
    p = logs_peer(sockdir, [path])
    proc = follow_logs(p)
    try:
        out = Output(proc)
        out.wait_for(b"old\n")
        with open(path, "a") as f:
            f.write("before rotation\n")
        # Rotate the way the controller does: rename, then a fresh file at the same path.
        os.replace(path, path + ".1")
        with open(path + ".1", "a") as f:
            f.write("late line in the old file\n")
        Path(path).write_text("after rotation\n")
        seen = out.wait_for(b"after rotation\n")
        assert seen.index(b"before rotation") < seen.index(b"late line") < seen.index(b"after")
        with open(path, "a") as f:
            f.write("more\n")
        out.wait_for(b"more\n")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert out.stream.read() in (None, b"")
        lines = [b"old", b"before rotation", b"late line in the old file", b"after rotation"]
        assert out.seen == b"\n".join([*lines, b"more", b""])
    finally:
        proc.kill()
        proc.wait()
        p.close()


def test_logs_follow_many_files_keeps_lines_whole(sockdir: str) -> None:
    files = [os.path.join(sockdir, f"web-{i}.log") for i in range(3)]
    for f in files[:2]:
        Path(f).write_text("ready\n")
    p = logs_peer(sockdir, files)  # web-2.log appears only after following starts
    proc = follow_logs(p, "-n", "1")
    try:
        out = Output(proc)
        out.wait_for(b"web:0 | ready\nweb:1 | ready\n")
        with open(files[0], "a") as a, open(files[1], "a") as b:
            a.write("half of ")
            a.flush()
            b.write("whole b\n")
            b.flush()
            out.wait_for(b"web:1 | whole b\n")
            a.write("a line\n")
        Path(files[2]).write_text("new file\n")
        out.wait_for(b"web:0 | half of a line\n")
        seen = out.wait_for(b"web:2 | new file\n")
        assert b"half of \n" not in seen
    finally:
        proc.kill()
        proc.wait()
        p.close()
