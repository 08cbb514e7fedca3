"""Talking to procpilot's HTTP server in tests: requests, raw bytes, credentials, TLS."""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import bcrypt
import yaml

from procpilot.core.web.config import WebConfig, load_web_config
from procpilot.core.web.server import Server

PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes


def fetch(
    server: Server,
    path: str = "/",
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Response:
    host, port = server.address
    scheme = "https" if context else "http"
    request = urllib.request.Request(f"{scheme}://{host}:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def basic(user: str, password: str | bytes) -> dict[str, str]:
    raw = user.encode() + b":" + (password if isinstance(password, bytes) else password.encode())
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def write_config(directory: Path, content: Any) -> str:
    path = directory / "web.yml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return str(path)


def exchange(address: tuple[str, int], data: bytes, timeout: float = 30.0) -> bytes:
    """Send raw bytes and read until the server closes: what a malformed client sees."""
    chunks = []
    with socket.create_connection(address, timeout=timeout) as s:
        with contextlib.suppress(ConnectionError):  # answered before reading it all
            s.sendall(data)
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(raw: bytes) -> int:
    """The status code of a raw response."""
    version, status, _ = raw.split(b" ", 2)
    assert version == b"HTTP/1.1", raw[:100]
    return int(status)


def read_response(stream: Any) -> tuple[int, dict[str, str], bytes]:
    """One response (status, lower-case headers, body) from a file over a kept-alive socket."""
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline().decode()) not in ("\r\n", ""):
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return status, headers, stream.read(int(headers["content-length"]))


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # self-signed, unknown to the server
    rogue_key: Path

    def client(
        self, cert: Path | None = None, key: Path | None = None, **versions: Any
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if cert and key:
            context.load_cert_chain(str(cert), str(key))
        for name, value in versions.items():
            setattr(context, name, value)
        return context


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1, a client one, and a rogue self-signed one."""
    p = Pki(*(d / n for n in ("ca.crt", "s.crt", "s.key", "c.crt", "c.key", "r.crt", "r.key")))
    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2")
    openssl("req", "-x509", *new_key, "-subj", "/CN=test CA", "-keyout", d / "ca.key", "-out", p.ca)
    for cert, key, name, extra in (
        (p.server_cert, p.server_key, "127.0.0.1", ("-addext", "subjectAltName=IP:127.0.0.1")),
        (p.client_cert, p.client_key, "client", ()),
    ):
        openssl(
            "req", "-x509", *new_key, "-subj", f"/CN={name}", *extra,
            "-CA", p.ca, "-CAkey", d / "ca.key", "-keyout", key, "-out", cert,
        )  # fmt: skip
    openssl(
        "req", "-x509", *new_key, "-subj", "/CN=rogue", "-keyout", p.rogue_key, "-out", p.rogue_cert
    )
    return p


def tls_config(pki: Pki, tmp_path: Path, **tls: str) -> WebConfig:
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), **tls}
    config = load_web_config(write_config(tmp_path, {"tls_server_config": tls}))
    assert config is not None
    return config


def refused(server: Server, context: ssl.SSLContext) -> bool:
    """True if the server ends the connection instead of answering (with TLS 1.3 a rejected
    client certificate shows up on the first read, not in the handshake)."""
    try:
        fetch(server, "/metrics", context=context)
    except (ssl.SSLError, ConnectionError, urllib.error.URLError):
        return True
    return False
