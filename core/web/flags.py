"""The exporter-toolkit web flags both services take, and the listen-address syntax."""

from __future__ import annotations

import argparse

# node_exporter's default for the same flag.
DEFAULT_MAX_REQUESTS = 40


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


def _max_requests_flag(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        # node_exporter takes 0 for "no limit"; here the limit is what bounds the threads.
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number of at least 1")
    return int(value)


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
    parser.add_argument(
        "--web.max-requests",
        dest="max_requests",
        type=_max_requests_flag,
        default=DEFAULT_MAX_REQUESTS,
        metavar="N",
        help="Requests served at once; more get 503 (default: %(default)s).",
    )
