"""The connection loop: one thread owns every client socket; requests run in worker threads,
at most ``max_requests`` at a time.

A thread per connection let idle and slow clients pin threads (500 idle connections made
about 350). Here a connection costs a file descriptor and a small buffer until a complete
request head has arrived; only then does a worker start, and the loop, not the worker,
writes the response, so no slow client ever holds a worker. A request beyond
``max_requests`` is answered 503 at once, as node_exporter's --web.max-requests does.
Every waiting connection has a deadline, and when ``max_connections`` are open a new one
makes room by closing the least recently active one that is not being served.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import selectors
import socket
import ssl
import threading
import time
from http import HTTPStatus
from typing import Protocol

from procpilot.core.web.http import MAX_HEAD, BadRequest, Request, head_length, parse_head

log = logging.getLogger("procpilot.web")

HEAD_TIMEOUT = 10.0  # for the TLS handshake and a request head, from their first byte
IDLE_TIMEOUT = 60.0  # a kept-alive connection waiting for its next request
WRITE_TIMEOUT = 60.0  # a client taking its response
LINGER = 2.0  # reading and dropping what a client still sends after an error answer
TICK = 0.5  # how often deadlines are checked
MAX_CONNECTIONS = 1024  # and at most half the file descriptor limit
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Site(Protocol):
    """What answers requests: ``respond`` runs in a worker, ``error`` in the loop (cheap)."""

    def respond(self, request: Request, remote: str, close: bool) -> bytes: ...

    def error(self, status: HTTPStatus) -> bytes: ...


class _Conn:
    """One client connection and where it is: handshaking, reading a head, with a worker
    (busy), writing (out), or draining before close (lingering)."""

    def __init__(self, sock: socket.socket, remote: str, now: float) -> None:
        self.sock = sock
        self.remote = remote
        self.handshaking = isinstance(sock, ssl.SSLSocket)
        self.inbuf = bytearray()
        self.out = memoryview(b"")
        self.busy = self.close_after = self.lingering = False
        self.events = 0  # what the selector watches for
        self.deadline = now + HEAD_TIMEOUT


def connection_limit() -> int:
    """MAX_CONNECTIONS, or half the soft file limit when that is lower: the rest of the
    service (procfs reads, log files, children's pipes) keeps its descriptors."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else min(MAX_CONNECTIONS, soft // 2)


class ConnectionLoop:
    def __init__(
        self,
        listener: socket.socket,
        tls: ssl.SSLContext | None,
        site: Site,
        max_requests: int,
        max_connections: int,
    ) -> None:
        self._listener = listener
        self._tls = tls
        self._site = site
        self._max_requests = max_requests
        self._max_connections = max_connections
        self._conns: dict[_Conn, None] = {}  # least recently active first
        self._in_flight = 0
        self._done: list[tuple[_Conn, bytes, bool]] = []  # from workers, under _lock
        self._lock = threading.Lock()
        self._stopping = self._accept_paused = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w, listener):
            s.setblocking(False)
        self._selector.register(self._wake_r, READ)
        self._selector.register(listener, READ)

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    def run(self) -> None:
        next_tick = time.monotonic() + TICK
        try:
            while not self._stopping:
                for key, _ in self._selector.select(TICK):
                    now = time.monotonic()
                    if key.fileobj is self._listener:
                        self._accept(now)
                    elif key.fileobj is self._wake_r:
                        self._finish_requests(now)
                    else:
                        self._step(key.data, now)
                if (now := time.monotonic()) >= next_tick:
                    self._tick(now)
                    next_tick = now + TICK
        finally:
            for conn in list(self._conns):
                self._close(conn)
            self._selector.close()
            self._listener.close()
            self._wake_r.close()
            with self._lock:  # a worker still running finds the wake socket closed
                self._wake_w.close()

    # -- connections ----------------------------------------------------------------------

    def _accept(self, now: float) -> None:
        for _ in range(64):  # then let the other sockets have a turn
            try:
                sock, address = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as e:  # out of descriptors or memory: make room, and pause
                log.warning("cannot accept a connection", extra={"fields": {"err": str(e)}})
                self._evict()
                self._selector.unregister(self._listener)  # until the next tick, not to spin
                self._accept_paused = True
                return
            if len(self._conns) >= self._max_connections:
                self._evict()
            sock.setblocking(False)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            conn = _Conn(sock, str(address[0]), now)
            self._conns[conn] = None
            self._watch(conn, READ)

    def _evict(self) -> None:
        for conn in self._conns:
            if not conn.busy:
                fields = {"remote": conn.remote}
                log.debug("connection closed to make room", extra={"fields": fields})
                self._close(conn)
                return

    def _tick(self, now: float) -> None:
        """Close connections past their deadline; accept again after a pause."""
        if self._accept_paused:
            self._selector.register(self._listener, READ)
            self._accept_paused = False
        for conn in [c for c in self._conns if c.deadline < now]:
            if not conn.lingering:
                log.debug("connection timed out", extra={"fields": {"remote": conn.remote}})
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        self._watch(conn, 0)
        conn.sock.close()
        self._conns.pop(conn, None)

    def _watch(self, conn: _Conn, events: int) -> None:
        if events == conn.events:
            return
        if not conn.events:
            self._selector.register(conn.sock, events, conn)
        elif not events:
            self._selector.unregister(conn.sock)
        else:
            self._selector.modify(conn.sock, events, conn)
        conn.events = events

    def _step(self, conn: _Conn, now: float) -> None:
        if conn.handshaking:
            self._handshake(conn, now)
        elif conn.out:
            self._write(conn, now)
        else:
            self._read(conn, now)

    def _handshake(self, conn: _Conn, now: float) -> None:
        assert isinstance(conn.sock, ssl.SSLSocket)
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(conn, READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(conn, WRITE)
            return
        except OSError as e:  # ssl.SSLError is an OSError
            fields = {"remote": conn.remote, "err": str(e)}
            log.debug("TLS handshake failed", extra={"fields": fields})
            self._close(conn)
            return
        conn.handshaking = False
        self._watch(conn, READ)
        self._read(conn, now)  # the first request may have come with the handshake

    def _read(self, conn: _Conn, now: float) -> None:
        try:
            for _ in range(16):  # then let the other sockets have a turn
                if len(conn.inbuf) > MAX_HEAD:
                    break
                data = conn.sock.recv(65536)
                if not data:
                    self._close(conn)
                    return
                if not conn.inbuf and not conn.lingering:  # a new head: its own deadline
                    conn.deadline = min(conn.deadline, now + HEAD_TIMEOUT)
                conn.inbuf += data
                if conn.lingering:
                    conn.inbuf.clear()
        except _WOULD_BLOCK:
            pass
        except OSError:
            self._close(conn)
            return
        if not conn.lingering:
            self._next_request(conn, now)

    # -- requests -------------------------------------------------------------------------

    def _next_request(self, conn: _Conn, now: float) -> None:
        """Start on the head at the front of conn's buffer, if one is complete."""
        try:
            length = head_length(conn.inbuf)
            if length is None:
                return
            request = parse_head(bytes(conn.inbuf[:length]))
            del conn.inbuf[:length]
        except BadRequest as e:
            fields = {"remote": conn.remote, "status": str(e.status.value), "err": str(e)}
            log.debug("bad request", extra={"fields": fields})
            self._send(conn, self._site.error(e.status), True, now)
            return
        if self._in_flight >= self._max_requests:
            fields = {"remote": conn.remote, "max_requests": str(self._max_requests)}
            log.debug("too many requests in flight", extra={"fields": fields})
            self._send(conn, self._site.error(HTTPStatus.SERVICE_UNAVAILABLE), True, now)
            return
        # A body is never read, so the connection cannot carry another request after it.
        close = not request.keep_alive or request.has_body
        self._in_flight += 1
        conn.busy = True
        conn.deadline = float("inf")  # the worker is bounded by what it computes
        self._watch(conn, 0)
        worker = threading.Thread(
            target=self._work, args=(conn, request, close), name="web-request", daemon=True
        )
        worker.start()

    def _work(self, conn: _Conn, request: Request, close: bool) -> None:
        try:
            data = self._site.respond(request, conn.remote, close)
        except Exception:
            log.exception("request failed", extra={"fields": {"remote": conn.remote}})
            data, close = self._site.error(HTTPStatus.INTERNAL_SERVER_ERROR), True
        with self._lock:
            self._done.append((conn, data, close))
        self._wake()

    def _wake(self) -> None:
        with self._lock, contextlib.suppress(OSError):  # full (a wake is pending) or closed
            self._wake_w.send(b"\0")

    def _finish_requests(self, now: float) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        with self._lock:
            done, self._done = self._done, []
        for conn, data, close in done:
            self._in_flight -= 1
            conn.busy = False
            self._send(conn, data, close, now)

    def _send(self, conn: _Conn, data: bytes, close: bool, now: float) -> None:
        conn.out, conn.close_after = memoryview(data), close
        conn.deadline = now + WRITE_TIMEOUT
        self._write(conn, now)

    def _write(self, conn: _Conn, now: float) -> None:
        try:
            while conn.out:
                conn.out = conn.out[conn.sock.send(conn.out) :]
        except _WOULD_BLOCK:
            self._watch(conn, WRITE)
            return
        except OSError:
            self._close(conn)
            return
        if conn.close_after:
            self._linger(conn, now)
            return
        self._conns.pop(conn)  # now the most recently active
        self._conns[conn] = None
        conn.deadline = now + (HEAD_TIMEOUT if conn.inbuf else IDLE_TIMEOUT)
        self._watch(conn, READ)
        self._next_request(conn, now)  # one the client sent before this answer

    def _linger(self, conn: _Conn, now: float) -> None:
        """Close after the client has read an error answer: closing with its unread input
        still queued would reset the connection and could destroy the answer in flight."""
        if isinstance(conn.sock, ssl.SSLSocket):
            self._close(conn)
            return
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_WR)
        conn.lingering = True
        conn.inbuf.clear()
        conn.deadline = now + LINGER
        self._watch(conn, READ)
