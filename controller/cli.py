"""procpilot-controller: flags, config, the metrics server and the supervision loop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from procpilot.controller import config
from procpilot.controller.isolation import CHOICES, Backend, IsolationError, choose
from procpilot.controller.metrics import ControllerCollector, make_registry
from procpilot.controller.runtime import ProcessRuntime
from procpilot.controller.supervisor import Supervisor
from procpilot.core.configfile import ConfigError
from procpilot.core.procfs import FS
from procpilot.core.service import (
    BAD_INPUT,
    CANNOT_START,
    Service,
    StartError,
    exit_quietly_on_stop_signals,
)
from procpilot.core.web.config import WebConfig

SERVICE = Service(
    prog="procpilot-controller",
    title="procpilot controller",
    description="Supervise the programs a YAML file names; serve their metrics.",
    default_port=10121,
    logger="procpilot.controller",
)


log = logging.getLogger(SERVICE.logger)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = SERVICE.parser()
    parser.add_argument("--config.file", dest="config_file", required=True, metavar="FILE",
                        help="YAML file naming the programs to supervise")
    parser.add_argument("--control.socket", dest="control_socket", default=None, metavar="PATH",
                        help="control socket for procpilotctl (default: control.socket of the "
                             f"config, else {config.DEFAULT_SOCKET})")
    parser.add_argument("--isolation", choices=CHOICES, default=None,
                        help="where instances run: auto (cgroup v2, v1, then none), cgroup2, "
                             "cgroup1 or none (default: isolation.backend of the config)")
    return parser.parse_args(argv)


def isolation(args: argparse.Namespace, cfg: config.ControllerConfig, fs: FS) -> Backend:
    """The backend the flag or config asks for; a forced one that cannot work is an error.

    Its cells go under a root named after the control socket, which no other controller
    can have at the same time (see isolation.root_name).
    """
    socket = os.path.abspath(args.control_socket or cfg.control.socket)
    backend = choose(args.isolation or cfg.isolation.backend, socket, cfg.isolation.root, fs)
    log.info("isolation", extra={"fields": {"backend": backend.name,
                                            "notes": "; ".join(backend.notes)}})
    return backend


async def run(args: argparse.Namespace, cfg: config.ControllerConfig,
              web_config: WebConfig | None) -> int:
    fs = FS.at()
    try:
        backend = isolation(args, cfg, fs)
    except IsolationError as e:
        which = args.isolation or cfg.isolation.backend
        return SERVICE.fail(StartError(f"isolation {which}: {e}", BAD_INPUT))
    runtime = ProcessRuntime(asyncio.get_running_loop(), fs, backend)
    supervisor = Supervisor(cfg, args.config_file, runtime, args.control_socket)
    registry = make_registry(ControllerCollector(supervisor.view_threadsafe))
    try:
        server = SERVICE.serve(args, registry, web_config)
    except StartError as e:
        backend.abandon()  # the cells' roots it made, which nothing would remove
        return SERVICE.fail(e)
    try:
        return await supervisor.run()
    except OSError as e:  # the control socket could not be set up
        backend.abandon()
        return SERVICE.fail(e, CANNOT_START)
    finally:
        server.shutdown()


def main(argv: list[str] | None = None) -> int:
    exit_quietly_on_stop_signals()
    args = parse_args(argv)
    try:
        web_config = SERVICE.setup(args)
        cfg = config.load(args.config_file)
    except (ConfigError, OSError) as e:
        return SERVICE.fail(e)
    return asyncio.run(run(args, cfg, web_config))


if __name__ == "__main__":
    sys.exit(main())
