"""A small threaded HTTP server for /metrics and a landing page, with TLS and basic auth.

prometheus-client's own server has TLS but no basic auth and answers every path with
metrics, so this is a server on the stdlib http.server instead.
"""

from __future__ import annotations

import gzip
import html
import logging
import signal
import socket
import socketserver
import ssl
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import CollectorRegistry

from procpilot.core.web.auth import BasicAuth
from procpilot.core.web.config import WebConfig
from procpilot.core.web.flags import parse_listen_address

log = logging.getLogger("procpilot.web")

# Idle keep-alive connections and stalled TLS handshakes give up their thread after this.
CONNECTION_TIMEOUT = 60.0
# shutdown() waits for the accept loop's next poll; idle cost is a few syscalls a second.
POLL_INTERVAL = 0.1
SERVICE_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1}


@dataclass(frozen=True)
class _Site:
    """What every request handler needs, built once by serve()."""

    registry: CollectorRegistry
    telemetry_path: str
    landing_page: bytes
    headers: dict[str, str]
    auth: BasicAuth | None


def landing_page(title: str, description: str, telemetry_path: str) -> bytes:
    t, d, p = (html.escape(s) for s in (title, description, telemetry_path))
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{t}</title></head>\n'
        f'<body><h1>{t}</h1><p>{d}</p><p><a href="{p}">Metrics</a></p></body></html>\n'
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: scrapes over TLS skip a handshake each time
    server_version = "procpilot"
    sys_version = ""

    def do_GET(self) -> None:
        site = self.server.site
        if site.auth is not None and not site.auth.check(self.headers.get("Authorization")):
            challenge = (("WWW-Authenticate", 'Basic realm="procpilot", charset="UTF-8"'),)
            self._send(401, "text/plain; charset=utf-8", b"Unauthorized\n", challenge)
        elif (path := urlsplit(self.path).path) == site.telemetry_path:
            self._send_metrics(site.registry)
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", site.landing_page)
        else:
            self._send(404, "text/plain; charset=utf-8", b"404 page not found\n")

    def _send_metrics(self, registry: CollectorRegistry) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(registry)
        except Exception:
            log.exception("collecting metrics failed")
            self._send(500, "text/plain; charset=utf-8", b"error collecting metrics\n")
            return
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            packed = gzip.compress(body, compresslevel=6)
            self._send(200, content_type, packed, (("Content-Encoding", "gzip"),))
        else:
            self._send(200, content_type, body)

    def _send(
        self, status: int, content_type: str, body: bytes, extra: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.send_response(status)
        for name, value in self.server.site.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    # http.server writes these to stderr; route them to debug logging. The request line and
    # status carry no secrets (credentials travel in a header, which is never logged).
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        fields = {"remote": self.client_address[0], "method": self.command, "path": self.path}
        log.debug("request", extra={"fields": {**fields, "status": str(code)}})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format % args, extra={"fields": {"remote": self.client_address[0]}})


class _HTTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, site: _Site, family: socket.AddressFamily, address: Any, tls: ssl.SSLContext | None
    ) -> None:
        self.address_family = family
        self.site = site
        self.tls = tls
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:  # '::' also accepts IPv4
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's own thread (ThreadingMixIn), so a client that is slow to
        # finish the TLS handshake holds up only itself, never the accept loop.
        request.settimeout(CONNECTION_TIMEOUT)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except OSError as e:  # ssl.SSLError is an OSError
            log.debug(
                "TLS handshake failed",
                extra={"fields": {"remote": client_address[0], "err": str(e)}},
            )
            return
        with connection:
            super().finish_request(connection, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are routine; anything else is a bug worth seeing.
        routine = isinstance(sys.exc_info()[1], OSError)
        fields = {"fields": {"remote": client_address[0]}}
        log.log(
            logging.DEBUG if routine else logging.ERROR,
            "request failed",
            exc_info=True,
            extra=fields,
        )


def _bind_target(host: str, port: int) -> tuple[socket.AddressFamily, Any]:
    if not host:
        if socket.has_dualstack_ipv6():
            return socket.AF_INET6, ("::", port)
        return socket.AF_INET, ("0.0.0.0", port)
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return family, sockaddr


class Server:
    """A server answering in a daemon thread; address is the bound (host, port)."""

    def __init__(self, httpd: _HTTPServer) -> None:
        self._httpd = httpd
        host, port = httpd.socket.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self._thread = threading.Thread(
            target=httpd.serve_forever, args=(POLL_INTERVAL,), name="web", daemon=True
        )
        # The thread inherits the signal mask it is started with: with the process's signals
        # blocked there, the kernel always delivers them to the main thread, which handles
        # them (or blocks them while exiting) instead of the default action in this thread.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, SERVICE_SIGNALS)
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def shutdown(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def serve(  # noqa: PLR0917 -- the signature is the shared API both services call
    registry: CollectorRegistry,
    listen_address: str,
    telemetry_path: str,
    web_config: WebConfig | None,
    title: str,
    description: str,
) -> Server:
    """Start serving metrics and the landing page in a daemon thread."""
    config = web_config or WebConfig()
    site = _Site(
        registry=registry,
        telemetry_path=telemetry_path,
        landing_page=landing_page(title, description, telemetry_path),
        headers={name: value for name, value in config.http_server_config.headers.items() if value},
        auth=BasicAuth(config.basic_auth_users) if config.basic_auth_users else None,
    )
    tls = config.tls_server_config.ssl_context() if config.tls_server_config else None
    family, sockaddr = _bind_target(*parse_listen_address(listen_address))
    return Server(_HTTPServer(site, family, sockaddr, tls))
