"""exporter.web against a real server on 127.0.0.1, real HTTP and real TLS."""

from __future__ import annotations

import argparse
import base64
import gzip
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric

from procpilot.core.configfile import ConfigError
from procpilot.core.web.auth import BasicAuth, BoundedSet, parse_basic_authorization
from procpilot.core.web.config import WebConfig, load_web_config
from procpilot.core.web.flags import add_flags, parse_listen_address
from procpilot.core.web.server import Server, serve

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


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("procpilot_test_events", "Test events.", registry=registry).inc(3)
    return registry


Start = Callable[..., Server]


@pytest.fixture
def start(registry: CollectorRegistry) -> Iterator[Start]:
    servers: list[Server] = []

    def start(
        web_config: WebConfig | None = None,
        listen_address: str = "127.0.0.1:0",
        telemetry_path: str = "/metrics",
        title: str = "procpilot exporter",
        reg: CollectorRegistry | None = None,
    ) -> Server:
        server = serve(
            reg or registry, listen_address, telemetry_path, web_config, title, "Process metrics."
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


# --- TLS material, made with the openssl CLI ------------------------------------------------


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


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
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


# --- pages ---------------------------------------------------------------------------------


def test_landing_page_has_title_description_and_link(start: Start) -> None:
    r = fetch(start(title="procpilot <exporter>", telemetry_path="/m"))
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    page = r.body.decode()
    assert "<title>procpilot &lt;exporter&gt;</title>" in page
    assert "Process metrics." in page
    assert 'href="/m"' in page


@pytest.mark.parametrize("path", ["/nope", "/metrics/", "/metricsx", "/index.html"])
def test_other_paths_are_404(start: Start, path: str) -> None:
    assert fetch(start(), path).status == 404


def test_metrics_default_to_the_text_format(start: Start) -> None:
    r = fetch(start(), "/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"procpilot_test_events_total 3.0" in r.body
    assert r.headers["Content-Encoding"] is None


def test_metrics_in_openmetrics_when_asked(start: Start) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    r = fetch(start(), "/metrics?x=1", headers={"Accept": accept})
    assert r.headers["Content-Type"].startswith("application/openmetrics-text")
    assert b"procpilot_test_events_total 3.0" in r.body
    assert r.body.endswith(b"# EOF\n")


def test_metrics_gzipped_when_accepted(start: Start) -> None:
    r = fetch(start(), "/metrics", headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert b"procpilot_test_events_total 3.0" in gzip.decompress(r.body)


def test_custom_telemetry_path(start: Start) -> None:
    server = start(telemetry_path="/internal/metrics")
    assert b"procpilot_test_events_total" in fetch(server, "/internal/metrics").body
    assert fetch(server, "/metrics").status == 404


class Failing:
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        raise RuntimeError("boom")


def test_failing_collection_is_a_500(start: Start) -> None:
    registry = CollectorRegistry()
    registry.register(Failing())
    server = start(reg=registry)
    assert fetch(server, "/metrics").status == 500
    assert fetch(server, "/").status == 200


def test_configured_headers_on_every_response(start: Start, tmp_path: Path) -> None:
    headers = {"X-Frame-Options": "deny", "Content-Security-Policy": ""}
    config = load_web_config(write_config(tmp_path, {"http_server_config": {"headers": headers}}))
    server = start(config)
    for path in ("/", "/metrics", "/nope"):
        r = fetch(server, path)
        assert r.headers["X-Frame-Options"] == "deny"
        assert r.headers["Content-Security-Policy"] is None  # blank means unset


class Rendezvous:
    """A collector whose collect() waits until `parties` scrapes are inside it at once."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=30)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        self.barrier.wait()  # raises BrokenBarrierError, hence a 500, if scrapes are serialised
        yield GaugeMetricFamily("procpilot_test_up", "Test.", value=1)


def test_requests_are_served_concurrently(start: Start) -> None:
    registry = CollectorRegistry()
    registry.register(Rendezvous(4))
    server = start(reg=registry)
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: fetch(server, "/metrics").status, range(4)))
    assert statuses == [200] * 4


# --- listen addresses and flags --------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (":10120", ("", 10120)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:10120", ("::1", 10120)),
        ("localhost:10120", ("localhost", 10120)),
        ("[::]:1", ("::", 1)),
    ],
)
def test_parse_listen_address(address: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize("address", ["10120", "host", ":", "::1:10120", ":65536", ":-1", ":1x", ""])
def test_parse_listen_address_rejects(address: str) -> None:
    with pytest.raises(ValueError, match=r"host:port|brackets"):
        parse_listen_address(address)


def test_listen_on_all_interfaces(start: Start) -> None:
    server = start(listen_address=":0")
    port = server.address[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
        assert r.status == 200
    if socket.has_dualstack_ipv6():
        with urllib.request.urlopen(f"http://[::1]:{port}/", timeout=30) as r:
            assert r.status == 200


def test_listen_on_ipv6_loopback(start: Start) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = start(listen_address="[::1]:0")
    except OSError as e:
        pytest.skip(f"cannot bind ::1: {e}")
    with urllib.request.urlopen(f"http://[::1]:{server.address[1]}/", timeout=30) as r:
        assert r.status == 200


def test_listen_on_a_host_name(start: Start) -> None:
    assert fetch(start(listen_address="localhost:0"), "/metrics").status == 200


def test_flags_defaults_and_dests() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, 10120)
    args = parser.parse_args([])
    assert (args.listen_address, args.telemetry_path, args.web_config_file) == (
        ":10120",
        "/metrics",
        None,
    )
    args = parser.parse_args(
        ["--web.listen-address=[::1]:9", "--web.telemetry-path=/m", "--web.config.file=w.yml"]
    )
    assert (args.listen_address, args.telemetry_path, args.web_config_file) == (
        "[::1]:9",
        "/m",
        "w.yml",
    )


@pytest.mark.parametrize("flag", ["--web.listen-address=10120", "--web.telemetry-path=metrics"])
def test_bad_flags_are_usage_errors(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, 10120)
    with pytest.raises(SystemExit):
        parser.parse_args([flag])
    assert flag.split("=", maxsplit=1)[0] in capsys.readouterr().err


# --- TLS -------------------------------------------------------------------------------------


def test_tls(start: Start, pki: Pki, tmp_path: Path) -> None:
    server = start(tls_config(pki, tmp_path))
    r = fetch(server, "/metrics", context=pki.client())
    assert r.status == 200
    assert b"procpilot_test_events_total" in r.body


def test_tls_version_bounds(start: Start, pki: Pki, tmp_path: Path) -> None:
    server = start(tls_config(pki, tmp_path, min_version="TLS13"))
    assert refused(server, pki.client(maximum_version=ssl.TLSVersion.TLSv1_2))
    assert not refused(server, pki.client())


def test_required_client_certificate(start: Start, pki: Pki, tmp_path: Path) -> None:
    config = tls_config(
        pki, tmp_path, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.ca)
    )
    server = start(config)
    assert not refused(server, pki.client(pki.client_cert, pki.client_key))
    assert refused(server, pki.client())
    assert refused(server, pki.client(pki.rogue_cert, pki.rogue_key))


def test_optional_client_certificate(start: Start, pki: Pki, tmp_path: Path) -> None:
    config = tls_config(
        pki, tmp_path, client_auth_type="VerifyClientCertIfGiven", client_ca_file=str(pki.ca)
    )
    server = start(config)
    assert not refused(server, pki.client())
    assert not refused(server, pki.client(pki.client_cert, pki.client_key))
    assert refused(server, pki.client(pki.rogue_cert, pki.rogue_key))


def test_stalled_tls_handshake_does_not_block_others(
    start: Start, pki: Pki, tmp_path: Path
) -> None:
    server = start(tls_config(pki, tmp_path))
    with socket.create_connection(server.address, timeout=30) as stalled:
        stalled.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and then nothing
        assert fetch(server, "/", context=pki.client()).status == 200


# --- basic auth ------------------------------------------------------------------------------


@pytest.fixture
def auth_server(start: Start, tmp_path: Path) -> Server:
    return start(load_web_config(write_config(tmp_path, {"basic_auth_users": {"alice": HASH}})))


def test_basic_auth_accepts_the_right_password(auth_server: Server) -> None:
    for _ in range(2):  # the second time from the cache
        r = fetch(auth_server, "/metrics", headers=basic("alice", PASSWORD))
        assert r.status == 200
        assert b"procpilot_test_events_total" in r.body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("alice", "wrong"),
        basic("alice", ""),
        basic("mallory", PASSWORD),
        basic("alice", b"x" * 73),
        basic("alice", PASSWORD.encode() + b"x" * (73 - len(PASSWORD))),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic " + base64.b64encode(b"alice").decode()},
    ],
    ids=[
        "missing",
        "wrong",
        "empty",
        "unknown-user",
        "73-bytes",
        "73-bytes-prefix",
        "not-base64",
        "bearer",
        "no-colon",
    ],
)
def test_basic_auth_rejects(auth_server: Server, headers: dict[str, str]) -> None:
    for path in ("/metrics", "/", "/nope"):
        r = fetch(auth_server, path, headers=headers)
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Basic ")
        assert b"procpilot_test" not in r.body


def test_wrong_password_after_a_cached_right_one(auth_server: Server) -> None:
    assert fetch(auth_server, "/", headers=basic("alice", PASSWORD)).status == 200
    assert fetch(auth_server, "/", headers=basic("alice", PASSWORD + "x")).status == 401


def test_basic_auth_over_tls(start: Start, pki: Pki, tmp_path: Path) -> None:
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    content = {"tls_server_config": tls, "basic_auth_users": {"alice": HASH}}
    server = start(load_web_config(write_config(tmp_path, content)))
    assert fetch(server, "/", context=pki.client()).status == 401
    assert fetch(server, "/", headers=basic("alice", PASSWORD), context=pki.client()).status == 200


def test_no_secret_is_logged(auth_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="procpilot.web")
    good, bad = basic("alice", PASSWORD), basic("alice", "hunter2")
    for headers in (good, good, bad, {"Authorization": "Basic !!!"}):
        fetch(auth_server, "/metrics", headers=headers)
    assert any(r.name == "procpilot.web" for r in caplog.records)  # requests were logged
    text = caplog.text + "".join(str(getattr(r, "fields", "")) for r in caplog.records)
    secrets = [
        PASSWORD,
        "hunter2",
        HASH,
        HASH[7:29],
        good["Authorization"][6:],
        bad["Authorization"][6:],
    ]
    for secret in secrets:
        assert secret not in text


def test_dummy_hash_for_unknown_users_has_the_configured_cost() -> None:
    auth = BasicAuth({"alice": HASH})
    assert auth._dummy_hash[:7] == HASH[:7].encode()
    assert not auth.check(basic("bob", PASSWORD)["Authorization"])


def test_parse_basic_authorization() -> None:
    assert parse_basic_authorization(basic("a", "b:c")["Authorization"]) == ("a", b"b:c")
    assert parse_basic_authorization("basic " + base64.b64encode(b"a:").decode()) == ("a", b"")
    assert parse_basic_authorization(None) is None
    assert parse_basic_authorization("Basic " + base64.b64encode(b"\xff:x").decode()) is None


def test_bounded_set_forgets_the_least_recently_used() -> None:
    keys = BoundedSet(2)
    keys.add(b"a")
    keys.add(b"b")
    assert b"a" in keys  # a is now more recent than b
    keys.add(b"c")
    assert (b"a" in keys, b"b" in keys, b"c" in keys, len(keys)) == (True, False, True, 2)


# --- web config file -------------------------------------------------------------------------


def test_no_file_means_no_config() -> None:
    assert load_web_config(None) is None


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_web_config(write_config(tmp_path, "")) == WebConfig()


def test_relative_paths_are_relative_to_the_config_file(pki: Pki, tmp_path: Path) -> None:
    for source in (pki.server_cert, pki.server_key):
        shutil.copy(source, tmp_path / source.name)
    tls = {"cert_file": pki.server_cert.name, "key_file": pki.server_key.name}
    config = load_web_config(write_config(tmp_path, {"tls_server_config": tls}))
    assert config is not None and config.tls_server_config is not None
    assert config.tls_server_config.cert_file == str(tmp_path / pki.server_cert.name)


def assert_config_error(path: str, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    message = str(info.value)
    assert message.startswith(path), message
    assert f"\n  {key}: " in message, message
    assert expected in message, message
    assert "plaintext" not in message and HASH[7:-1] not in message  # secrets stay out


@pytest.mark.parametrize(
    ("content", "key", "expected"),
    [
        ({"basic_auth_user": {}}, "basic_auth_user", "Extra inputs are not permitted"),
        ({"tls_server_config": {"cert_file": "x", "cert": "x"}}, "tls_server_config.cert", "not"),
        (
            {"tls_server_config": {"client_auth_type": "RequireClientCert"}},
            "tls_server_config.client_auth_type",
            "RequireAndVerifyClientCert",
        ),
        ({"tls_server_config": {"key_file": "x"}}, "tls_server_config.cert_file", "required"),
        (
            {"tls_server_config": {"cert_file": "/nonexistent/server.crt"}},
            "tls_server_config.cert_file",
            "no such file: /nonexistent/server.crt",
        ),
        (
            {"tls_server_config": {"min_version": "TLS1.2"}},
            "tls_server_config.min_version",
            "TLS12",
        ),
        (
            {"http_server_config": {"headers": {"X-Foo": "1"}}},
            "http_server_config.headers.X-Foo.[key]",
            "X-Frame-Options",
        ),
        (
            {"http_server_config": {"headers": {"X-Frame-Options": "deny\r\nSet-Cookie: a=b"}}},
            "http_server_config.headers.X-Frame-Options",
            "line breaks",
        ),
        ({"http_server_config": {"http2": True}}, "http_server_config.http2", "not permitted"),
        ({"basic_auth_users": {"alice": "plaintext"}}, "basic_auth_users.alice", "not a bcrypt"),
        ({"basic_auth_users": {"alice": HASH[:-1]}}, "basic_auth_users.alice", "not a bcrypt"),
        ({"basic_auth_users": {"a:b": HASH}}, "basic_auth_users.a:b.[key]", "cannot contain ':'"),
        ("basic_auth_users: [alice]", "basic_auth_users", "dictionary"),
    ],
)
def test_bad_config_file(tmp_path: Path, content: Any, key: str, expected: str) -> None:
    assert_config_error(write_config(tmp_path, content), key, expected)


def test_bad_tls_config(pki: Pki, tmp_path: Path) -> None:
    """Mistakes only visible with real certificate files."""
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    for mistake, expected in [
        ({"cert_file": str(pki.client_cert)}, "cannot load the certificate"),
        ({"client_auth_type": "RequireAndVerifyClientCert"}, "needs client_ca_file"),
        ({"client_ca_file": str(pki.ca)}, "does not verify"),
        ({"min_version": "TLS13", "max_version": "TLS12"}, "min_version TLS13 is above"),
    ]:
        path = write_config(tmp_path, {"tls_server_config": {**tls, **mistake}})
        assert_config_error(path, "tls_server_config", expected)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write_config(tmp_path, "tls_server_config: {")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_web_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_web_config(str(tmp_path / "absent.yml"))


def test_encrypted_key_is_an_error_not_a_prompt(pki: Pki, tmp_path: Path) -> None:
    key = tmp_path / "enc.key"
    openssl("pkey", "-in", pki.server_key, "-aes256", "-passout", "pass:secret", "-out", key)
    tls = {"cert_file": str(pki.server_cert), "key_file": str(key)}
    with pytest.raises(ConfigError, match="cannot load the certificate"):
        load_web_config(write_config(tmp_path, {"tls_server_config": tls}))
