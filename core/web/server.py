"""The HTTP server both services share: /metrics and a landing page, with TLS and basic auth.

prometheus-client's own server has TLS but no basic auth and answers every path with
metrics, and http.server spends a thread on every connection, so this is a small server of
its own: ``connections`` runs the sockets, ``http`` parses heads, this module answers.
Every path needs basic auth when it is configured, whatever the method; then unknown paths
are 404, methods other than GET and HEAD 405.
"""

from __future__ import annotations

import gzip
import html
import logging
import signal
import socket
import ssl
import threading
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import CollectorRegistry

from procpilot.core.web.auth import BasicAuth
from procpilot.core.web.config import WebConfig
from procpilot.core.web.connections import ConnectionLoop, connection_limit
from procpilot.core.web.flags import DEFAULT_MAX_REQUESTS, parse_listen_address
from procpilot.core.web.http import Request, response

log = logging.getLogger("procpilot.web")

TEXT = "text/plain; charset=utf-8"
CHALLENGE = ("WWW-Authenticate", 'Basic realm="procpilot", charset="UTF-8"')
ALLOW = ("Allow", "GET, HEAD")
LOGGED_PATH = 200  # characters of a request path that make it into the log
SERVICE_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1}


@dataclass(frozen=True)
class _Site:
    """Answers requests; built once by serve()."""

    registry: CollectorRegistry
    telemetry_path: str
    landing_page: bytes
    headers: tuple[tuple[str, str], ...]
    auth: BasicAuth | None

    def respond(self, request: Request, remote: str, close: bool) -> bytes:
        status, content_type, body, extra = self._route(request)
        fields = {"remote": remote, "method": request.method,
                  "path": request.path[:LOGGED_PATH], "status": str(status.value)}
        log.debug("request", extra={"fields": fields})
        headers = [*self.headers, ("Content-Type", content_type), *extra]
        return response(status, headers, body, head_only=request.method == "HEAD", close=close)

    def error(self, status: HTTPStatus) -> bytes:
        body = f"{status.value} {status.phrase}\n".encode()
        return response(status, [*self.headers, ("Content-Type", TEXT)], body, close=True)

    def _route(self, request: Request) -> tuple[HTTPStatus, str, bytes, list[tuple[str, str]]]:
        if self.auth is not None and not self.auth.check(request.headers.get("authorization")):
            return HTTPStatus.UNAUTHORIZED, TEXT, b"Unauthorized\n", [CHALLENGE]
        path = request.path
        if path not in (self.telemetry_path, "/"):
            return HTTPStatus.NOT_FOUND, TEXT, b"404 page not found\n", []
        if request.method not in ("GET", "HEAD"):
            return HTTPStatus.METHOD_NOT_ALLOWED, TEXT, b"Method Not Allowed\n", [ALLOW]
        if path == "/":
            return HTTPStatus.OK, "text/html; charset=utf-8", self.landing_page, []
        return self._metrics(request)

    def _metrics(self, request: Request) -> tuple[HTTPStatus, str, bytes, list[tuple[str, str]]]:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        try:
            body = encoder(self.registry)
        except Exception:
            log.exception("collecting metrics failed")
            return HTTPStatus.INTERNAL_SERVER_ERROR, TEXT, b"error collecting metrics\n", []
        if gzip_accepted(request.headers.get("accept-encoding", "")):
            packed = gzip.compress(body, compresslevel=6)
            return HTTPStatus.OK, content_type, packed, [("Content-Encoding", "gzip")]
        return HTTPStatus.OK, content_type, body, []


def landing_page(title: str, description: str, telemetry_path: str) -> bytes:
    t, d, p = (html.escape(s) for s in (title, description, telemetry_path))
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{t}</title></head>\n'
        f'<body><h1>{t}</h1><p>{d}</p><p><a href="{p}">Metrics</a></p></body></html>\n'
    ).encode()


def _bind_target(host: str, port: int) -> tuple[socket.AddressFamily, Any]:
    if not host:
        if socket.has_dualstack_ipv6():
            return socket.AF_INET6, ("::", port)
        return socket.AF_INET, ("0.0.0.0", port)
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return family, sockaddr


def listen(listen_address: str) -> socket.socket:
    """A listening socket with the kernel's largest backlog (socketserver's 5 made fresh
    connections wait for SYN retransmits, 1 s and more, as soon as a few arrived at once)."""
    family, sockaddr = _bind_target(*parse_listen_address(listen_address))
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # '::' also accepts IPv4
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return sock


class Server:
    """Serves in a daemon thread; address is the bound (host, port)."""

    def __init__(self, listener: socket.socket, loop: ConnectionLoop) -> None:
        host, port = listener.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self._loop = loop
        self._thread = threading.Thread(target=loop.run, name="web", daemon=True)
        # Threads inherit the signal mask they are started with (its workers inherit this
        # one's): with the process's signals blocked here, the kernel always delivers them
        # to the main thread, which handles them (or blocks them while exiting) instead of
        # the default action in a web thread.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, SERVICE_SIGNALS)
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def shutdown(self) -> None:
        self._loop.stop()
        self._thread.join()


def serve(  # noqa: PLR0917 -- the signature is the shared API both services call
    registry: CollectorRegistry,
    listen_address: str,
    telemetry_path: str,
    web_config: WebConfig | None,
    title: str,
    description: str,
    max_requests: int = DEFAULT_MAX_REQUESTS,
) -> Server:
    """Start serving metrics and the landing page in a daemon thread."""
    config = web_config or WebConfig()
    site = _Site(
        registry=registry,
        telemetry_path=telemetry_path,
        landing_page=landing_page(title, description, telemetry_path),
        headers=tuple((k, v) for k, v in config.http_server_config.headers.items() if v),
        auth=BasicAuth(config.basic_auth_users) if config.basic_auth_users else None,
    )
    tls: ssl.SSLContext | None = None
    if config.tls_server_config is not None:
        tls = config.tls_server_config.ssl_context()
    listener = listen(listen_address)
    return Server(listener, ConnectionLoop(listener, tls, site, max_requests, connection_limit()))
