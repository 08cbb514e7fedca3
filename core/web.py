"""HTTP serving shared by the exporter and the controller: metrics, a landing page, and TLS
and basic auth from a web config file in the Prometheus exporter-toolkit format.

prometheus-client's own server has TLS but no basic auth and answers every path with
metrics, so this is a small threaded server on the stdlib http.server instead.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import hashlib
import hmac
import html
import logging
import os
import secrets
import socket
import socketserver
import ssl
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import bcrypt
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import CollectorRegistry
from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from procpilot.core.configfile import ConfigError, Strict, format_error, load_yaml

log = logging.getLogger("procpilot.web")

# Idle keep-alive connections and stalled TLS handshakes give up their thread after this.
CONNECTION_TIMEOUT = 60.0
# shutdown() waits for the accept loop's next poll; idle cost is a few syscalls a second.
POLL_INTERVAL = 0.1
# bcrypt ignores (bcrypt 4) or refuses (bcrypt 5) anything longer.
BCRYPT_MAX_PASSWORD = 72

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# The toolkit's names (Go's tls.ClientAuthType). Python's ssl cannot ask for a certificate
# without verifying it, so: RequestClientCert does not ask (nothing would read an unverified
# certificate anyway, so the same clients get in), and RequireAnyClientCert verifies against
# client_ca_file (stricter than Go, never looser).
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
ClientAuthType = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
# The toolkit's list; the server sets every other header itself.
HeaderName = Literal[
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
]
BCRYPT_ALPHABET = frozenset("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


# --- web config file -------------------------------------------------------------------


def _bcrypt_hash(value: str) -> str:
    # Never echo the value: error messages end up in logs.
    prefix, cost, rest = value[:4], value[4:6], value[6:]
    ok = (
        prefix in ("$2a$", "$2b$", "$2y$")
        and cost.isascii()
        and cost.isdigit()
        and 4 <= int(cost) <= 31
        and rest[:1] == "$"
        and len(rest) == 54
        and set(rest[1:]) <= BCRYPT_ALPHABET
    )
    if not ok:
        raise ValueError("not a bcrypt hash (60 characters starting with $2a$, $2b$ or $2y$)")
    return value


def _user_name(value: str) -> str:
    if ":" in value:
        raise ValueError("a basic auth user name cannot contain ':'")
    return value


def _header_value(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("a header value cannot contain line breaks")
    return value


class TLSServerConfig(Strict):
    cert_file: str
    key_file: str
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: str | None = None
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _existing_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Relative paths are relative to the web config file, as in the exporter toolkit."""
        if value is None:
            return None
        path = os.path.join((info.context or {}).get("base_dir", ""), value)
        if not os.path.isfile(path):
            raise ValueError(f"no such file: {path}")
        return path

    @model_validator(mode="after")
    def _consistent(self) -> TLSServerConfig:
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError(
                f"min_version {self.min_version} is above max_version {self.max_version}"
            )
        verifies = CLIENT_AUTH[self.client_auth_type] != ssl.CERT_NONE
        if verifies and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if not verifies and self.client_ca_file is not None:
            raise ValueError(
                f"client_ca_file is set but client_auth_type {self.client_auth_type} does not "
                "verify client certificates; use RequireAndVerifyClientCert"
            )
        try:  # load once now so that a bad certificate or key fails at startup
            self.ssl_context()
        except (ssl.SSLError, OSError) as e:
            raise ValueError(f"cannot load the certificate, key or client CA: {e}") from None
        return self

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[self.min_version]
        context.maximum_version = TLS_VERSIONS[self.max_version]
        # Encrypted keys are not supported; an empty password makes OpenSSL fail instead of
        # prompting on the terminal.
        context.load_cert_chain(self.cert_file, self.key_file, password=b"")
        context.verify_mode = CLIENT_AUTH[self.client_auth_type]
        if self.client_ca_file is not None:
            context.load_verify_locations(self.client_ca_file)
        return context


class HTTPServerConfig(Strict):
    headers: dict[HeaderName, Annotated[str, AfterValidator(_header_value)]] = Field(
        default_factory=dict
    )


class WebConfig(Strict):
    """Top level of --web.config.file."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[
        Annotated[str, AfterValidator(_user_name)], Annotated[str, AfterValidator(_bcrypt_hash)]
    ] = Field(default_factory=dict)


def load_web_config(path: str | None) -> WebConfig | None:
    """Load and validate --web.config.file; no file means plain HTTP without auth."""
    if path is None:
        return None
    data = load_yaml(path)
    try:
        return WebConfig.model_validate(
            {} if data is None else data, context={"base_dir": os.path.dirname(path)}
        )
    except ValidationError as e:
        raise ConfigError(format_error(path, e)) from None


# --- basic auth --------------------------------------------------------------------------


class BoundedSet:
    """At most `size` keys; adding to a full set forgets the least recently used key."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: bytes) -> bool:
        with self._lock:
            if key not in self._keys:
                return False
            self._keys.move_to_end(key)
            return True

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: bytes) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)


def parse_basic_authorization(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from an Authorization header, or None if it is not valid Basic."""
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        return (user.decode(), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


class BasicAuth:
    """Checks Basic credentials against bcrypt hashes, remembering the ones that passed.

    Scrapes repeat the same credentials every few seconds and bcrypt is slow on purpose, so
    verified credentials are cached under an HMAC with a per-process random key: the cache
    never holds the password, and a key includes the hash, so a changed hash misses.
    """

    def __init__(self, users: dict[str, str], cache_size: int = 1024) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._verified = BoundedSet(cache_size)
        self._cache_key_secret = secrets.token_bytes(32)
        # Unknown users are checked against this, so that they take as long as known ones.
        cost = max(int(hashed[4:6]) for hashed in users.values())
        self._dummy_hash = bcrypt.hashpw(b"", bcrypt.gensalt(rounds=cost))

    def check(self, authorization: str | None) -> bool:
        credentials = parse_basic_authorization(authorization)
        if credentials is None:
            return False
        user, password = credentials
        if len(password) > BCRYPT_MAX_PASSWORD:
            return False
        hashed = self._users.get(user)
        if hashed is None:
            bcrypt.checkpw(password, self._dummy_hash)
            return False
        key = self._cache_key(user.encode(), hashed, password)
        if key in self._verified:
            return True
        if not bcrypt.checkpw(password, hashed):
            return False
        self._verified.add(key)
        return True

    def _cache_key(self, *parts: bytes) -> bytes:
        mac = hmac.new(self._cache_key_secret, digestmod=hashlib.sha256)
        for part in parts:  # length-prefixed, so that parts cannot run into each other
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return mac.digest()


# --- listen address and flags ------------------------------------------------------------


def parse_listen_address(address: str) -> tuple[str, int]:
    """':9100' -> ('', 9100), '[::1]:9100' -> ('::1', 9100), 'localhost:0' -> ('localhost', 0)."""
    host, sep, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{address!r}: put an IPv6 address in brackets, e.g. '[::1]:9100'")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"{address!r} is not host:port, e.g. ':9100' or '127.0.0.1:9100'")
    return host, int(port)


def format_address(address: tuple[str, int]) -> str:
    """(host, port) as host:port, with IPv6 hosts in brackets: the inverse of the flag."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen_address_flag(value: str) -> str:
    try:
        parse_listen_address(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _telemetry_path_flag(value: str) -> str:
    if not value.startswith("/"):
        raise argparse.ArgumentTypeError(f"{value!r} must start with '/'")
    return value


def add_flags(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        type=_listen_address_flag,
        default=f":{default_port}",
        metavar="HOST:PORT",
        help="Address to listen on; ':PORT' means all interfaces (default: %(default)s).",
    )
    parser.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        type=_telemetry_path_flag,
        default="/metrics",
        metavar="PATH",
        help="Path under which to expose metrics (default: %(default)s).",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        default=None,
        metavar="FILE",
        help="Web config file (exporter-toolkit format) enabling TLS and/or basic auth.",
    )


# --- serving -----------------------------------------------------------------------------


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
        self._thread.start()

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
