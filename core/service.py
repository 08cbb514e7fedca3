"""What both services do the same way at start-up: the common flags, logging, the web
config, serving /metrics and reporting why they could not start.

Exit statuses: 2 for bad input (flags, config files: nothing was started), 1 when the
service could not set itself up (the listen address is taken, say).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import dataclass

from prometheus_client.registry import CollectorRegistry

from procpilot.core import logs
from procpilot.core.version import __version__
from procpilot.core.web import flags as web_flags
from procpilot.core.web.config import WebConfig, load_web_config
from procpilot.core.web.server import Server, serve

BAD_INPUT, CANNOT_START = 2, 1


def exit_quietly_on_stop_signals() -> None:
    """SIGTERM or SIGINT before the service has set up its own handling end the process
    with status 0: nothing was started that needs stopping. The default action would kill
    it, and whoever asked for an orderly stop would see -15."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_0)


def _exit_0(signum: int, frame: object) -> None:
    raise SystemExit(0)


class StartError(Exception):
    """The service cannot start; str() is the reason, ``code`` the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Service:
    prog: str  # the command name, first in every error line
    title: str  # landing page heading
    description: str  # --help and landing page
    default_port: int
    logger: str  # name of the service's logger

    def parser(self) -> argparse.ArgumentParser:
        """--version, the web flags and the log flags; the service adds its own."""
        parser = argparse.ArgumentParser(prog=self.prog, description=self.description)
        parser.add_argument("--version", action="version", version=f"{self.prog} {__version__}")
        web_flags.add_flags(parser, self.default_port)
        logs.add_flags(parser)
        return parser

    def setup(self, args: argparse.Namespace) -> WebConfig | None:
        """Start logging and load --web.config.file (a bad one is a StartError)."""
        logs.setup(args.log_level, args.log_format)
        return load_web_config(args.web_config_file)

    def serve(self, args: argparse.Namespace, registry: CollectorRegistry,
              web_config: WebConfig | None, **fields: str) -> Server:
        """Serve /metrics in a thread and log where; StartError when the address is taken."""
        try:
            server = serve(registry, args.listen_address, args.telemetry_path, web_config,
                           self.title, self.description, args.max_requests)
        except OSError as e:
            raise StartError(f"cannot serve on {args.listen_address}: {e}", CANNOT_START) from e
        address = web_flags.format_address(server.address)
        logging.getLogger(self.logger).info(
            "listening", extra={"fields": {"address": address, **fields}})
        return server

    def fail(self, err: Exception, code: int = BAD_INPUT) -> int:
        """Print why the service cannot run, on one line per problem; return the status."""
        print(f"{self.prog}: {err}", file=sys.stderr)
        return err.code if isinstance(err, StartError) else code
