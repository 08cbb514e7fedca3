"""procpilot-exporter: flags, config loading, serving, reload on SIGHUP."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from prometheus_client.registry import CollectorRegistry

from procpilot.core import logs as logsetup
from procpilot.core import web
from procpilot.core.configfile import ConfigError
from procpilot.core.procfs import FS, ProcReader
from procpilot.core.version import __version__
from procpilot.exporter import config
from procpilot.exporter.collectors import COLLECTORS
from procpilot.exporter.scrape import ScrapeCollector

DEFAULT_PORT = 10120
log = logging.getLogger("procpilot.exporter")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="procpilot-exporter",
        description="Prometheus exporter of process metrics, read from procfs at scrape time.",
    )
    parser.add_argument("--version", action="version", version=f"procpilot-exporter {__version__}")
    web.add_flags(parser, DEFAULT_PORT)
    parser.add_argument("--config.file", dest="config_file", default=None,
                        help="YAML file with process groups and options (default: none)")
    parser.add_argument("--procfs", default="/proc",
                        help="procfs mount point, e.g. /host/proc in a container")
    for name in COLLECTORS:
        parser.add_argument(f"--collector.{name}", dest=f"collector_{name}", default=True,
                            action=argparse.BooleanOptionalAction,
                            help=f"enable the {name} collector")
    logsetup.add_flags(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logsetup.setup(args.log_level, args.log_format)
    try:
        cfg = config.load(args.config_file)
        web_config = web.load_web_config(args.web_config_file)
        reader = ProcReader(FS.at(args.procfs))
    except (ConfigError, OSError) as e:
        print(f"procpilot-exporter: {e}", file=sys.stderr)
        return 2
    enabled = [name for name in COLLECTORS if getattr(args, f"collector_{name}")]
    collector = ScrapeCollector(reader, cfg, enabled)
    registry = CollectorRegistry()
    registry.register(collector)
    # Block these before the server thread starts, so only sigwait() below receives them.
    signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        server = web.serve(registry, args.listen_address, args.telemetry_path, web_config,
                           "procpilot exporter", "Process metrics read from procfs at scrape time.")
    except OSError as e:
        print(f"procpilot-exporter: cannot serve on {args.listen_address}: {e}", file=sys.stderr)
        return 1
    fields = {"address": web.format_address(server.address), "collectors": ",".join(enabled)}
    log.info("listening", extra={"fields": fields})
    while signal.sigwait(signals) == signal.SIGHUP:
        _reload(collector, args.config_file)
    server.shutdown()
    log.info("stopped")
    return 0


def _reload(collector: ScrapeCollector, path: str | None) -> None:
    """Swap in a new config; a broken file is logged and the running config stays."""
    try:
        cfg = config.load(path)
    except ConfigError as e:
        log.error("reload failed, keeping the running config", extra={"fields": {"err": str(e)}})
        return
    collector.configure(cfg)
    log.info("config reloaded", extra={"fields": {"file": path}})


if __name__ == "__main__":
    sys.exit(main())
