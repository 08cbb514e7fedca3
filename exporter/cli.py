"""procpilot-exporter: flags, config loading, serving, reload on SIGHUP."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from prometheus_client import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from procpilot.core import sdnotify
from procpilot.core.configfile import ConfigError
from procpilot.core.procfs import FS, ProcReader
from procpilot.core.service import Service, StartError, exit_quietly_on_stop_signals
from procpilot.exporter import config
from procpilot.exporter.collectors import COLLECTORS
from procpilot.exporter.exits import ExitListener
from procpilot.exporter.scrape import ScrapeCollector

SERVICE = Service(
    prog="procpilot-exporter",
    title="procpilot exporter",
    description="Prometheus exporter of process metrics, read from procfs at scrape time.",
    default_port=10120,
    logger="procpilot.exporter",
)
log = logging.getLogger(SERVICE.logger)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = SERVICE.parser()
    parser.add_argument("--config.file", dest="config_file", default=None,
                        help="YAML file with process groups and options (default: none)")
    parser.add_argument("--procfs", default="/proc",
                        help="procfs mount point, e.g. /host/proc in a container")
    for name in COLLECTORS:
        parser.add_argument(f"--collector.{name}", dest=f"collector_{name}", default=True,
                            action=argparse.BooleanOptionalAction,
                            help=f"enable the {name} collector")
    parser.add_argument("--taskstats", default=True, action=argparse.BooleanOptionalAction,
                        help="account processes that end between scrapes from the kernel's "
                        "taskstats (needs CAP_NET_ADMIN; used while some group is configured)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    exit_quietly_on_stop_signals()
    args = parse_args(argv)
    try:
        web_config = SERVICE.setup(args)
        cfg = config.load(args.config_file)
        reader = ProcReader(FS.at(args.procfs))
    except (ConfigError, OSError) as e:
        return SERVICE.fail(e)
    enabled = [name for name in COLLECTORS if getattr(args, f"collector_{name}")]
    collector = ScrapeCollector(reader, cfg, enabled, ExitListener() if args.taskstats else None)
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)  # process_*: the exporter's own CPU, memory, fds
    # Block these before the server thread starts, so only sigwait() below receives them.
    signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        server = SERVICE.serve(args, registry, web_config, collectors=",".join(enabled))
    except StartError as e:
        return SERVICE.fail(e)
    sdnotify.notify("READY=1")
    while signal.sigwait(signals) == signal.SIGHUP:
        _reload(collector, args.config_file)
    sdnotify.notify("STOPPING=1")
    server.shutdown()
    collector.close()
    log.info("stopped")
    return 0


def _reload(collector: ScrapeCollector, path: str | None) -> None:
    """Swap in a new config; a broken file is logged and the running config stays."""
    try:
        cfg = config.load(path)
    except ConfigError as e:
        collector.reloads.record(ok=False)
        log.error("reload failed, keeping the running config", extra={"fields": {"err": str(e)}})
        return
    collector.configure(cfg)
    collector.reloads.record(ok=True)
    log.info("config reloaded", extra={"fields": {"file": path}})


if __name__ == "__main__":
    sys.exit(main())
