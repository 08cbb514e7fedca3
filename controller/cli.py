"""procpilot-controller: flags, config, the metrics server and the supervision loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from procpilot.controller import config
from procpilot.controller.metrics import ControllerCollector, make_registry
from procpilot.controller.states import State
from procpilot.controller.supervisor import Controller
from procpilot.core import logs as logsetup
from procpilot.core import web
from procpilot.core.version import __version__

DEFAULT_PORT = 10121
log = logging.getLogger("procpilot.controller")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="procpilot-controller",
        description="Supervise the programs a YAML file names; serve their metrics.",
    )
    parser.add_argument("--version", action="version",
                        version=f"procpilot-controller {__version__}")
    parser.add_argument("--config.file", dest="config_file", required=True, metavar="FILE",
                        help="YAML file naming the programs to supervise")
    parser.add_argument("--control.socket", dest="control_socket", default=None, metavar="PATH",
                        help="control socket for procpilotctl (default: control.socket of the "
                             f"config, else {config.DEFAULT_SOCKET})")
    web.add_flags(parser, DEFAULT_PORT)
    logsetup.add_flags(parser)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, cfg: config.ControllerConfig,
              web_config: web.WebConfig | None) -> int:
    controller = Controller(cfg, args.config_file, args.control_socket)
    registry = make_registry(ControllerCollector(controller.view_threadsafe, list(State)))
    try:
        server = web.serve(registry, args.listen_address, args.telemetry_path, web_config,
                           "procpilot controller", "Supervised programs and their processes.")
    except OSError as e:
        print(f"procpilot-controller: cannot serve on {args.listen_address}: {e}",
              file=sys.stderr)
        return 1
    log.info("listening", extra={"fields": {"address": web.format_address(server.address)}})
    try:
        return await controller.run()
    except OSError as e:  # the control socket could not be set up
        print(f"procpilot-controller: {e}", file=sys.stderr)
        return 1
    finally:
        server.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logsetup.setup(args.log_level, args.log_format)
    try:
        cfg = config.load(args.config_file)
        web_config = web.load_web_config(args.web_config_file)
    except (config.ConfigError, OSError) as e:
        print(f"procpilot-controller: {e}", file=sys.stderr)
        return 2
    return asyncio.run(run(args, cfg, web_config))


if __name__ == "__main__":
    sys.exit(main())
