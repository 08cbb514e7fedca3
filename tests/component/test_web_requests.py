"""The HTTP server under hostile and unusual clients: malformed heads, other methods, more
requests than workers, idle and slow connections, keep-alive. Real sockets on 127.0.0.1."""

from __future__ import annotations

import http.client
import logging
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from procpilot.core.web import connections
from procpilot.core.web.config import load_web_config
from procpilot.core.web.server import Server
from tests.component.conftest import Start
from tests.support.service import wait_for
from tests.support.web import (
    HASH,
    PASSWORD,
    Pki,
    basic,
    exchange,
    fetch,
    read_response,
    status_of,
    tls_config,
    write_config,
)

GET = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
CLIENT_HELLO = bytes.fromhex("160301020001000001fc0303") + bytes(range(32)) + b"\x20" * 40


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", 505),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (bytes(range(256)) * 4, 400),
        (CLIENT_HELLO, 400),
        (b"GET /\r\n\r\n", 400),  # HTTP/0.9
        (b"GET / HTTP/1.x\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
        ("GET /\u00e9 HTTP/1.1\r\n\r\n".encode(), 400),
        (b"GET / HTTP/1.1\r\nHost\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", 400),  # folded
        (b"GET / HTTP/1.1\r\nX-A: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    ],
    ids=[
        "garbage", "70KB-path", "HTTP/9.9", "HTTP/2.0", "binary", "TLS-hello", "HTTP/0.9",
        "bad-version", "double-space", "non-ascii", "no-colon", "space-before-colon", "folded",
        "20KB-header",
    ],
)  # fmt: skip
def test_malformed_requests_get_a_status_and_one_quiet_line(
    start: Start, caplog: pytest.LogCaptureFixture, raw: bytes, status: int
) -> None:
    server = start()
    caplog.set_level(logging.DEBUG, logger="procpilot.web")
    answer = exchange(server.address, raw)
    assert status_of(answer) == status
    assert b"\r\nConnection: close\r\n" in answer
    records = [r for r in caplog.records if r.name == "procpilot.web"]
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in records] == [
        (logging.DEBUG, "bad request", None)
    ]
    assert fetch(server, "/metrics").status == 200  # and the server goes on


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "BREW"])
def test_methods_other_than_get_and_head_get_405(start: Start, method: str) -> None:
    server = start()
    for path in ("/", "/metrics"):
        answer = exchange(server.address, f"{method} {path} HTTP/1.0\r\n\r\n".encode())
        assert status_of(answer) == 405
        assert b"\r\nAllow: GET, HEAD\r\n" in answer
    assert status_of(exchange(server.address, f"{method} /x HTTP/1.0\r\n\r\n".encode())) == 404


def test_head_answers_like_get_without_the_body(start: Start) -> None:
    server = start()
    connection = http.client.HTTPConnection(*server.address, timeout=30)
    try:
        for path in ("/", "/metrics"):
            connection.request("GET", path)
            get = connection.getresponse()
            body = get.read()
            connection.request("HEAD", path)  # on the same kept-alive connection
            head = connection.getresponse()
            assert (head.status, head.read()) == (200, b"")
            assert head.headers["Content-Length"] == str(len(body))
            assert head.headers["Content-Type"] == get.headers["Content-Type"]
    finally:
        connection.close()


@pytest.fixture
def auth_server(start: Start, tmp_path: Path) -> Server:
    return start(load_web_config(write_config(tmp_path, {"basic_auth_users": {"alice": HASH}})))


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "OPTIONS", "DELETE"])
def test_auth_comes_before_the_method(auth_server: Server, method: str) -> None:
    for path in ("/", "/metrics", "/nope"):
        answer = exchange(auth_server.address, f"{method} {path} HTTP/1.0\r\n\r\n".encode())
        assert status_of(answer) == 401
        assert b"\r\nWWW-Authenticate: Basic " in answer
    credentials = basic("alice", PASSWORD)["Authorization"]
    request = f"{method} /metrics HTTP/1.0\r\nAuthorization: {credentials}\r\n\r\n".encode()
    assert status_of(exchange(auth_server.address, request)) == (
        200 if method in ("GET", "HEAD") else 405
    )


def test_keep_alive_pipelining_and_http_1_0(start: Start) -> None:
    server = start()
    with socket.create_connection(server.address, timeout=30) as s:
        s.sendall(GET + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # two at once
        stream = s.makefile("rb")
        first, second = read_response(stream), read_response(stream)
        assert (first[0], second[0]) == (200, 200)
        assert b"procpilot_test_events_total" in first[2] and b"<html>" in second[2]
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")  # 1.0 without keep-alive: the server closes
        status, headers, _ = read_response(stream)
        assert (status, headers["connection"]) == (200, "close")
        assert stream.read() == b""


def test_a_request_with_a_body_is_answered_and_the_connection_closed(start: Start) -> None:
    server = start()
    request = b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
    answer = exchange(server.address, request + GET)  # the second request is never read
    assert status_of(answer) == 405
    assert answer.count(b"HTTP/1.1 ") == 1


class Gate:
    """A collector whose collect() waits until opened, counting the scrapes inside it."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.inside = 0

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        self.inside += 1
        self.opened.wait(30)
        yield GaugeMetricFamily("procpilot_test_up", "Test.", value=1)


def test_requests_beyond_max_requests_get_503(start: Start) -> None:
    gate, registry = Gate(), CollectorRegistry()
    registry.register(gate)
    server = start(reg=registry, max_requests=2)
    statuses: list[int] = []
    waiting = [threading.Thread(target=lambda: statuses.append(fetch(server, "/metrics").status))
               for _ in range(2)]
    for t in waiting:
        t.start()
    wait_for(lambda: gate.inside == 2, what="two scrapes in collect()")
    refused = exchange(server.address, GET)
    assert status_of(refused) == 503
    assert b"Connection: close" in refused
    gate.opened.set()
    for t in waiting:
        t.join(30)
    assert statuses == [200, 200]
    assert fetch(server, "/metrics").status == 200  # the slots are free again


def test_idle_and_slow_connections_hold_no_thread(start: Start) -> None:
    server = start()
    threads = threading.active_count()
    idle = [socket.create_connection(server.address, timeout=30) for _ in range(200)]
    try:
        for s in idle[::2]:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\n")  # and never the blank line
        assert fetch(server, "/metrics").status == 200
        # One thread per connection made 200 more here; now only the scrape's worker came
        # and went.
        wait_for(lambda: threading.active_count() == threads, what="no thread left")
    finally:
        for s in idle:
            s.close()


def test_slow_and_idle_clients_are_disconnected(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "HEAD_TIMEOUT", 0.3)
    monkeypatch.setattr(connections, "IDLE_TIMEOUT", 0.6)
    monkeypatch.setattr(connections, "TICK", 0.05)
    server = start()
    silent, slow, idle = (socket.create_connection(server.address, timeout=30) for _ in range(3))
    with silent, slow, idle:
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")
        idle.sendall(GET)
        stream = idle.makefile("rb")
        assert read_response(stream)[0] == 200
        assert silent.recv(1) == b""
        assert slow.recv(1) == b""
        assert stream.read() == b""


def test_a_full_server_makes_room_by_closing_the_least_active(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "MAX_CONNECTIONS", 8)
    server = start()
    clients = [socket.create_connection(server.address, timeout=30) for _ in range(7)]
    active = socket.create_connection(server.address, timeout=30)
    stream = active.makefile("rb")
    clients += [socket.create_connection(server.address, timeout=30) for _ in range(7)]
    try:
        # 15 connections to a server of 8: each new one closed the oldest idle one.
        assert [s.recv(1) for s in clients[:7]] == [b""] * 7
        active.sendall(GET)  # now the most recently active
        assert read_response(stream)[0] == 200
        assert fetch(server, "/metrics").status == 200  # made room too, not from `active`
        assert clients[7].recv(1) == b""
        active.sendall(GET)
        assert read_response(stream)[0] == 200
    finally:
        for s in [active, *clients]:
            s.close()


class Big:
    """About 4 MB of exposition: more than a socket buffer takes at once."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("procpilot_test_big", "Test.", labels=["n"])
        for n in range(60_000):
            family.add_metric([f"{n:060d}"], n)
        yield family


def test_large_responses_arrive_whole_over_http_and_tls(
    start: Start, pki: Pki, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    registry.register(Big())
    plain = fetch(start(reg=registry), "/metrics")
    tls = fetch(start(tls_config(pki, tmp_path), reg=registry), "/metrics", context=pki.client())
    assert len(plain.body) > 4_000_000
    assert plain.body == tls.body


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) shows listen backlogs")
def test_listen_backlog_is_the_kernels_largest(start: Start) -> None:
    port = start().address[1]
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True,
                         check=True, timeout=30).stdout.split()
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert int(out[2]) == min(socket.SOMAXCONN, somaxconn) > 5  # Send-Q of a listener
