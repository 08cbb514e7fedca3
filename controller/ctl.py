"""procpilotctl: talk to a running procpilot-controller over its control socket.

Exit codes: 0 ok, 1 the controller refused (``ok: false``), 2 bad usage, 3 not reachable
(no socket, connection refused, permission denied, no answer in time, garbled answer).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import time

from procpilot.controller.protocol import (
    DEFAULT_SOCKET,
    PROGRAM_NAME,
    ProtocolError,
    encode,
    parse_response,
)
from procpilot.controller.tail import follow, show
from procpilot.core.units import format_duration, format_size, parse_duration

TYPE_CHECKING = False  # see protocol.py: no typing module at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from procpilot.controller.protocol import (
        InstanceStatus,
        LastExitStatus,
        Request,
        Response,
        Status,
    )

OK, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3
COLUMNS = ("PROGRAM", "INSTANCE", "STATE", "PID", "UPTIME", "RESTARTS", "RSS", "LAST-EXIT")
_NAME = PROGRAM_NAME.strip("^$")


class Unreachable(Exception):
    """The controller could not be asked; str() says why."""


def request(path: str, message: Request, timeout: float) -> Response:
    """Send one request line and read the one response line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(encode(message))
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except FileNotFoundError:
            raise Unreachable(f"{path}: no such socket (controller not running?)") from None
        except ConnectionRefusedError:
            raise Unreachable(f"{path}: connection refused (controller not running?)") from None
        except PermissionError:
            raise Unreachable(f"{path}: permission denied") from None
        except TimeoutError:
            raise Unreachable(f"{path}: no answer within {format_duration(timeout)}") from None
        except OSError as e:
            raise Unreachable(f"{path}: {e.strerror or e}") from None
    try:
        return parse_response(data)
    except ProtocolError as e:
        raise Unreachable(f"{path}: {e}") from None


def _pattern(regex: str, what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not re.fullmatch(regex, value):
            raise argparse.ArgumentTypeError(f"{value!r}: expected {what}")
        return value

    return check


def _count(value: str) -> int | str:
    if value == "auto":
        return value
    if value.isdigit():
        return int(value)
    raise argparse.ArgumentTypeError(f"{value!r}: expected a number of instances or auto")


def _seconds(value: str) -> float:
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
    sub.add_parser("reload", help="re-read the config file")
    sub.add_parser("shutdown", help="stop every program and the controller")
    logs = sub.add_parser("logs", help="print a program's log files (with --json: their names)")
    logs.add_argument("target", type=program, metavar="PROGRAM")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing, across rotation")
    logs.add_argument("-n", "--lines", type=int, metavar="N",
                      help="last N lines of each file (default: all; 10 with -f)")
    scale = sub.add_parser("scale", help="pin a pool's size, or give it back to the autoscaler")
    scale.add_argument("target", type=program, metavar="PROGRAM")
    scale.add_argument("count", type=_count, metavar="N|auto")
    return p


def _last_exit(last: LastExitStatus | None, now: float) -> str:
    if not last:
        return "-"
    sig = last.get("signal")
    if sig is not None:
        try:
            how = signal.Signals(sig).name
        except ValueError:
            how = f"signal {sig}"
    else:
        how = f"exit {last.get('code')}"
    ago = format_duration(max(0, round(now - float(last.get("time", now)))))
    return f"{how}, {last.get('reason', '?')}, {ago} ago"


def _state(instance: InstanceStatus) -> str:
    wait = instance.get("backoff_seconds") or 0
    if instance["state"] == "backoff" and wait > 0:
        return f"backoff({format_duration(round(wait))})"
    return str(instance["state"])


def _or_dash(value: Any, fmt: Callable[[Any], str] = str) -> str:
    return "-" if value is None else fmt(value)


def status_rows(result: Status, now: float) -> list[tuple[str, ...]]:
    """One row per instance (or one per program without instances), as strings."""
    rows: list[tuple[str, ...]] = []
    for prog in result.get("programs", []):
        for inst in prog.get("instances", []):
            rows.append((
                prog["program"], inst["id"], _state(inst), _or_dash(inst.get("pid")),
                _or_dash(inst.get("uptime_seconds"), lambda s: format_duration(round(s))),
                str(inst.get("restarts", 0)), _or_dash(inst.get("rss_bytes"), format_size),
                _last_exit(inst.get("last_exit"), now),
            ))
        if not prog.get("instances"):
            rows.append((prog["program"], "-", prog["state"], "-", "-", "-", "-", "-"))
    return rows


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]) for r in rows
    )


def _pools(result: Status) -> list[str]:
    lines = []
    for prog in result.get("programs", []):
        pool = prog.get("pool")
        if pool:
            util = pool.get("utilization")
            mode = "auto" if pool.get("pinned") is None else f"pinned to {pool['pinned']}"
            lines.append(
                f"pool {prog['program']}: {mode}, desired {pool['desired']} "
                f"(min {pool['min']}, max {pool['max']}), utilization "
                + ("-" if util is None else f"{util:.2f}")
            )
    return lines


def render_status(result: Status, now: float) -> str:
    body = table([COLUMNS, *status_rows(result, now)])
    return "\n".join([body, *_pools(result)])


def _print_logs(files: list[str], program: str, args: argparse.Namespace) -> None:
    labels = [_label(path, program) for path in files]
    count = args.lines if args.lines is not None else (10 if args.follow else None)
    if args.follow:
        follow(files, labels, sys.stdout.buffer, count)
    else:
        show(files, labels, sys.stdout.buffer, count)


def _label(path: str, program: str) -> str:
    """'/var/log/procpilot/web-1.log' -> 'web:1' (the instance id), else the file name."""
    name = path.rsplit("/", 1)[-1]
    match = re.fullmatch(re.escape(program) + r"-(\d+)\.log", name)
    return f"{program}:{match.group(1)}" if match else name


def _message(args: argparse.Namespace) -> Request:
    message: Request = {"cmd": args.cmd}
    if hasattr(args, "target"):
        message["target"] = args.target
    if args.cmd == "scale":
        message["count"] = args.count
    return message


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
        elif args.cmd == "logs":
            _print_logs(list(result["files"]), args.target, args)
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
