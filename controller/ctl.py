"""procpilotctl: talk to a running procpilot-controller over its control socket.

Exit codes: 0 ok, 1 the controller refused (``ok: false``), 2 bad usage, 3 not reachable
(no socket, connection refused, permission denied, no answer in time, garbled answer).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

from procpilot.controller.protocol import (
    DEFAULT_SOCKET,
    MAX_INSTANCES,
    PROGRAM_NAME,
    signal_number,
)

TYPE_CHECKING = False  # see protocol.py: no typing module at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from procpilot.controller.protocol import Request

OK, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3
_NAME = PROGRAM_NAME.strip("^$")


def _pattern(regex: str, what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not re.fullmatch(regex, value):
            raise argparse.ArgumentTypeError(f"{value!r}: expected {what}")
        return value

    return check


def _count(value: str) -> int | str:
    if value == "auto":
        return value
    if value.isascii() and value.isdigit() and len(value) <= 6 and int(value) <= MAX_INSTANCES:
        return int(value)
    raise argparse.ArgumentTypeError(
        f"{value!r}: expected a number of instances (at most {MAX_INSTANCES}) or auto")


def _signal(value: str) -> int:
    try:
        return signal_number(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _seconds(value: str) -> float:
    from procpilot.core.units import parse_duration  # only when --timeout is given

    try:
        return parse_duration(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="procpilotctl", description=__doc__.split("\n")[0])
    p.add_argument("--control.socket", dest="socket", default=DEFAULT_SOCKET, metavar="PATH",
                   help=f"controller's control socket (default {DEFAULT_SOCKET})")
    p.add_argument("--json", action="store_true", help="print the controller's JSON answer")
    p.add_argument("--timeout", type=_seconds, default=60.0, metavar="DURATION",
                   help="how long to wait for an answer (default 1m)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("status", help="table of programs and instances")
    target = _pattern(rf"all|{_NAME}(:\d+)?", "PROGRAM, PROGRAM:INSTANCE or all")
    program = _pattern(rf"(?!all$){_NAME}", "a program name")
    for cmd in ("start", "stop", "restart"):
        sub.add_parser(cmd, help=f"{cmd} a program, one instance or all").add_argument(
            "target", type=target, metavar="PROGRAM[:INSTANCE]|all")
    sub.choices["restart"].add_argument(
        "--rolling", action="store_true",
        help="one instance at a time, each once the one before is ready (see rollout)")
    sig = sub.add_parser("signal", help="send a signal to the process group of a program's "
                         "instances, or of one")
    sig.add_argument("target", type=target, metavar="PROGRAM[:INSTANCE]|all")
    sig.add_argument("signal", type=_signal, metavar="SIGNAL", help="HUP, SIGUSR1, 10...")
    sub.add_parser("reload", help="re-read the config file")
    sub.add_parser("shutdown", help="stop every program and the controller")
    logs = sub.add_parser("logs", help="print a program's log files (with --json: their names)")
    logs.add_argument("target", type=program, metavar="PROGRAM")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing, across rotation")
    logs.add_argument("-n", "--lines", type=int, metavar="N",
                      help="last N lines of each file (default: all; 10 with -f)")
    explain = sub.add_parser("explain", help="a pool's last autoscaling decisions and why")
    explain.add_argument("target", type=program, metavar="PROGRAM")
    scale = sub.add_parser("scale", help="pin a pool's size, or give it back to the autoscaler")
    scale.add_argument("target", type=program, metavar="PROGRAM")
    scale.add_argument("count", type=_count, metavar="N|auto")
    scale.add_argument("--force", action="store_true",
                       help="pin a pool outside its autoscale min..max")
    return p


def _message(args: argparse.Namespace) -> Request:
    message: Request = {"cmd": args.cmd}
    if hasattr(args, "target"):
        message["target"] = args.target
    if args.cmd == "scale":
        message["count"] = args.count
        if args.force:
            message["force"] = True
    if getattr(args, "rolling", False):
        message["rolling"] = True
    if args.cmd == "signal":
        message["signal"] = args.signal
    return message


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Imported once the arguments are good: --help and usage errors do not pay for them.
    from procpilot.controller.client import Unreachable, request
    from procpilot.controller.render import print_logs, render_explain, render_status

    try:
        response = request(args.socket, _message(args), args.timeout)
    except Unreachable as e:
        print(f"procpilotctl: cannot reach the controller: {e}", file=sys.stderr)
        return UNREACHABLE
    if args.json:
        print(json.dumps(response))
        return OK if response["ok"] else REFUSED
    if not response["ok"]:
        print(f"procpilotctl: {response.get('error', 'refused')}", file=sys.stderr)
        return REFUSED
    result: Any = response.get("result")
    try:
        if args.cmd == "status":
            print(render_status(result, time.time()))
        elif args.cmd == "explain":
            print(render_explain(result))
        elif args.cmd == "logs":
            print_logs(list(result["files"]), args.target, args.lines, args.follow)
        else:
            print(result)
    except (KeyError, TypeError, AttributeError) as e:
        print(f"procpilotctl: unexpected answer from the controller ({e!r})", file=sys.stderr)
        return UNREACHABLE
    except KeyboardInterrupt:
        pass  # the way to end logs -f
    except BrokenPipeError:
        # Piped into head: stop quietly; point stdout at /dev/null so the exit flush is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return OK


if __name__ == "__main__":
    sys.exit(main())
