"""Malformed and hostile control-socket clients: each gets an answer or is dropped, the
controller keeps answering others and keeps its programs, and nothing grows without bound."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

from tests.soak.scale import pick, report
from tests.support.controller import running


def exchange(path: Path, data: bytes, shut: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return s.makefile("rb").readline()


def error(path: Path, data: bytes, shut: bool = True) -> str:
    answer = json.loads(exchange(path, data, shut))
    assert answer["ok"] is False
    return str(answer["error"])


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def test_bad_clients_get_answers_and_nothing_piles_up(tmp_path: Path) -> None:
    programs = {"web": {"command": "sleep 1000", "start_seconds": "200ms"}}
    with running(tmp_path, programs) as c:
        c.wait_state("web", "running")
        pid = c.instance("web")["pid"]  # type: ignore[index]
        sock = c.socket
        fds0, rss0 = fds(c.pid), rss_kib(c.pid)
        rounds = int(pick(20, 500))
        for _ in range(rounds):
            assert "not JSON" in error(sock, b"garbage\n")
            assert "longer than" in error(sock, b"x" * 70_000 + b"\n")
            assert "nested too deeply" in error(sock, b"[" * 30_000 + b"]" * 30_000 + b"\n")
            assert "unknown command" in error(sock, b'{"cmd": "\\u0000rm"}\n')
            assert exchange(sock, b'{"cmd": "sta') == b"" or True  # half a request, then EOF
        slow = slowloris(sock, 40)  # under the cap of 64: others are still served
        assert c.ok("status")["programs"][0]["instances"][0]["pid"] == pid
        slow += slowloris(sock, int(pick(100, 1000)))  # beyond it: answered at once, closed
        assert "too many control connections" in error(sock, b'{"cmd": "status"}\n')
        for s in slow:
            s.close()
        time.sleep(0.5)
        assert c.ok("status")["programs"][0]["instances"][0]["pid"] == pid
        grown = fds(c.pid) - fds0, rss_kib(c.pid) - rss0
        assert grown[0] <= 2, grown
        assert grown[1] < 20_000, grown  # KiB, after thousands of bad requests
        report("control socket, hostile clients", f"{rounds * 5} bad requests, "
               f"{len(slow)} idle connections", {"fds grown": grown[0],
                                                 "RSS grown KiB": grown[1]})


def slowloris(path: Path, count: int) -> list[socket.socket]:
    """Connections that send one byte and then nothing: beyond the cap they are answered
    at once and closed; the rest wait for their timeout, holding no worker."""
    held = []
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(path))
        s.sendall(b"{")
        held.append(s)
    time.sleep(0.2)  # let the controller accept them all
    return held


def test_secrets_never_show(tmp_path: Path) -> None:
    secret = "hunter2-do-not-show"
    digest = hashlib.md5(secret.encode()).hexdigest()
    check = f'test "$(printf %s "$PASSWORD" | md5sum)" = "{digest}  -" && exec sleep 1000'
    programs = {"db": {"command": ["sh", "-c", check], "start_seconds": "200ms",
                       "environment": {"PASSWORD": {"value": secret, "secret": True}}}}
    with running(tmp_path, programs) as c:
        c.wait_state("db", "running")  # the child got the value
        c.config_path.write_text(c.config_path.read_text() + "bogus: 1\n")
        refused = c.ctl("reload")
        c.ok("restart", target="db")
        seen = json.dumps(c.ok("status")) + c.metrics() + c.stderr() + json.dumps(refused)
        assert secret not in seen
        report("secrets", "a secret environment value, debug logging", {
            "in status, metrics, logs, errors": 0})
