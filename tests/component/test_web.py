"""exporter.web against a real server on 127.0.0.1, real HTTP and real TLS."""

from __future__ import annotations

import argparse
import base64
import gzip
import logging
import shutil
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

from procpilot.core.configfile import ConfigError
from procpilot.core.web.auth import BasicAuth, BoundedSet, parse_basic_authorization
from procpilot.core.web.config import WebConfig, load_web_config
from procpilot.core.web.flags import add_flags, parse_listen_address
from procpilot.core.web.server import Server
from tests.component.conftest import Start
from tests.support.web import (
    HASH,
    PASSWORD,
    Pki,
    basic,
    fetch,
    openssl,
    refused,
    tls_config,
    write_config,
)

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
    assert (args.listen_address, args.telemetry_path, args.web_config_file, args.max_requests) == (
        ":10120",
        "/metrics",
        None,
        40,
    )
    args = parser.parse_args(
        ["--web.listen-address=[::1]:9", "--web.telemetry-path=/m", "--web.config.file=w.yml",
         "--web.max-requests=3"]
    )
    assert (args.listen_address, args.telemetry_path, args.web_config_file, args.max_requests) == (
        "[::1]:9",
        "/m",
        "w.yml",
        3,
    )


@pytest.mark.parametrize(
    "flag",
    [
        "--web.listen-address=10120",
        "--web.telemetry-path=metrics",
        "--web.max-requests=0",
        "--web.max-requests=-1",
        "--web.max-requests=x",
    ],
)
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


def test_unknown_users_are_checked_against_the_costliest_hash() -> None:
    cheap = bcrypt.hashpw(b"other", bcrypt.gensalt(rounds=5)).decode()
    costly = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=6)).decode()
    auth = BasicAuth({"bob": cheap, "alice": costly})
    assert auth._decoy == costly.encode()
    # The decoy's own password does not let an unknown user in.
    assert not auth.check(basic("mallory", PASSWORD)["Authorization"])


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
        # Cost 31 hung the exporter at start-up with its signals blocked.
        ({"basic_auth_users": {"a": HASH.replace("$04$", "$31$")}}, "basic_auth_users.a", "31 is"),
        ({"basic_auth_users": {"a": HASH.replace("$04$", "$17$")}}, "basic_auth_users.a", "16,"),
        # Passed the syntax check, then crashed every request of the user (Invalid salt).
        ({"basic_auth_users": {"a": "$2b$04$" + "a" * 53}}, "basic_auth_users.a", "not a usable"),
        ("basic_auth_users: [alice]", "basic_auth_users", "dictionary"),
    ],
)
def test_bad_config_file(tmp_path: Path, content: Any, key: str, expected: str) -> None:
    assert_config_error(write_config(tmp_path, content), key, expected)


def test_bad_tls_config(pki: Pki, tmp_path: Path) -> None:
    """Mistakes only visible with real certificate files: each names its key and file."""
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    junk = tmp_path / "junk.pem"
    junk.write_text("not PEM\n")
    key, cert = str(pki.server_key), str(pki.client_cert)
    for mistake, where, expected in [
        ({"cert_file": str(junk)}, "cert_file", f"{junk}: no PEM certificate can be read"),
        ({"cert_file": key}, "cert_file", f"{key}: no PEM certificate can be read"),
        ({"key_file": str(junk)}, "key_file", f"{junk}: no unencrypted PEM private key"),
        ({"cert_file": cert}, "key_file", f"{key} is not the key of the certificate in {cert}"),
        (
            {"client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(junk)},
            "client_ca_file",
            f"{junk}: no PEM CA certificates can be read",
        ),
        ({"client_auth_type": "RequireAndVerifyClientCert"}, "", "needs client_ca_file"),
        ({"client_ca_file": str(pki.ca)}, "", "does not verify"),
        ({"min_version": "TLS13", "max_version": "TLS12"}, "", "min_version TLS13 is above"),
    ]:
        path = write_config(tmp_path, {"tls_server_config": {**tls, **mistake}})
        assert_config_error(path, f"tls_server_config.{where}".rstrip("."), expected)


def test_highest_bcrypt_cost_is_accepted_without_hashing(tmp_path: Path) -> None:
    """Cost 16 loads (checked at cost 4) and serving starts without making a hash."""
    costly = HASH.replace("$04$", "$16$")  # a valid hash shape; never checked at its cost
    config = load_web_config(write_config(tmp_path, {"basic_auth_users": {"alice": costly}}))
    assert config is not None and config.basic_auth_users == {"alice": costly}
    BasicAuth(config.basic_auth_users)


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
    path = write_config(tmp_path, {"tls_server_config": tls})
    assert_config_error(path, "tls_server_config.key_file", f"{key}: no unencrypted PEM private")
