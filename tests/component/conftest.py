"""Fixtures of the component tests of the HTTP server: servers on 127.0.0.1 and TLS files."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from procpilot.core.web.config import WebConfig
from procpilot.core.web.server import Server, serve
from tests.support.web import Pki, make_pki


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
        *,
        listen_address: str = "127.0.0.1:0",
        telemetry_path: str = "/metrics",
        title: str = "procpilot exporter",
        reg: CollectorRegistry | None = None,
        max_requests: int = 40,
    ) -> Server:
        server = serve(reg or registry, listen_address, telemetry_path, web_config, title,
                       "Process metrics.", max_requests)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make test certificates")
    return make_pki(tmp_path_factory.mktemp("pki"))
