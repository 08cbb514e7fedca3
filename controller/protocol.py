"""The control protocol between procpilotctl and the controller, typed once for both ends.

One JSON request line in, one JSON response line out, per connection on a unix socket.
procpilotctl imports this module, so it holds only what a socket client needs: no config
models, no YAML, no web server (``procpilotctl --help`` stays close to a bare interpreter
start).
"""

from __future__ import annotations

import json
import signal

# The message types are for the type checker only (mypy reads any TYPE_CHECKING as true):
# the typing module alone would add most of a bare interpreter start to procpilotctl's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal, NotRequired, TypedDict

    Command = Literal["status", "start", "stop", "restart", "reload", "shutdown", "logs",
                      "scale", "explain", "signal"]

    class Request(TypedDict):
        cmd: Command
        target: NotRequired[str]  # "all", PROGRAM or PROGRAM:INDEX
        count: NotRequired[int | Literal["auto"]]  # scale only
        force: NotRequired[bool]  # scale a pool outside its autoscale bounds
        rolling: NotRequired[bool]  # restart instance by instance, each once ready
        signal: NotRequired[int]  # signal only

    class Response(TypedDict):
        ok: bool
        result: NotRequired[Any]  # the command's result, when ok
        error: NotRequired[str]  # why it was refused, when not ok

    class LastExitStatus(TypedDict):
        code: int | None
        signal: int | None
        reason: str  # a restart reason, or "stopped" when asked to stop
        time: float  # unix seconds
        error: NotRequired[str | None]  # why it could not start at all

    class InstanceStatus(TypedDict):
        id: str  # PROGRAM:INDEX
        state: str
        pid: int | None
        uptime_seconds: float | None
        restarts: int
        rss_bytes: int | None
        backoff_seconds: float
        last_exit: LastExitStatus | None
        ready: NotRequired[bool]  # serving: its process is ready, or its predecessor still is
        status_text: NotRequired[str | None]  # the last STATUS= it sent (ready: notify)
        replacing: NotRequired[int | None]  # pid of the process it replaces (rolling, surge)

    class PoolStatus(TypedDict):
        min: int
        max: int
        pinned: int | None
        utilization: float | None
        desired: int

    class LimitStatus(TypedDict):
        kind: str
        value: int | float | str
        enforced: str  # kernel, polled, process, not enforced

    class ProgramStatus(TypedDict):
        program: str
        state: str
        desired: int
        pool: PoolStatus | None
        instances: list[InstanceStatus]
        limits: NotRequired[list[LimitStatus]]
        waiting_for: NotRequired[list[str]]  # dependencies it waits on before starting

    class Status(TypedDict):
        programs: list[ProgramStatus]

    class TargetExplained(TypedDict):
        name: str
        value: float | None
        utilization: float | None
        recommendation: int | None
        reason: str

    class Explained(TypedDict):
        """One autoscaler decision: what each target said and what became of it."""

        time: float  # unix seconds
        current: int
        recommendation: int | None  # the highest target's, before stabilization and limits
        desired: int
        reason: str
        targets: list[TargetExplained]

    class LogFiles(TypedDict):
        files: list[str]

DEFAULT_SOCKET = "/run/procpilot/control.sock"
PROGRAM_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
ALL = "all"  # the target meaning every program, so no program may be called that
REQUEST_LIMIT = 64 * 1024  # bytes in one request line
# Instances per program: each is a process, and starting 10,000 takes about a minute here.
MAX_INSTANCES = 10_000
COMMANDS = ("status", "start", "stop", "restart", "reload", "shutdown", "logs", "scale",
            "explain", "signal")


class ProtocolError(ValueError):
    """A request or response that does not follow the protocol; str() says how."""


def signal_number(value: object) -> int:
    """TERM, SIGTERM, term or 15 -> 15; ValueError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in signal.valid_signals():
            raise ValueError(f"{value}: not a signal number on this system")
        return value
    if isinstance(value, str):
        if value.isascii() and value.isdigit():
            return signal_number(int(value))
        name = value.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            return int(signal.Signals[name])
        except KeyError:
            pass
    raise ValueError(f"{value!r}: expected a signal name such as TERM, INT, HUP or a number")


def parse_request(line: bytes) -> Request:
    """Validate one request line: a known cmd, a string target, a count >= 0 or "auto"."""
    try:
        data = json.loads(line)
    except RecursionError:
        raise ProtocolError("request is nested too deeply") from None
    except ValueError as e:
        raise ProtocolError(f"request is not JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cmd"), str):
        raise ProtocolError('request must be an object with a "cmd" string')
    if data["cmd"] not in COMMANDS:
        raise ProtocolError(f"unknown command {data['cmd']!r}")
    if "target" in data and not isinstance(data["target"], str):
        raise ProtocolError('"target" must be "all", PROGRAM or PROGRAM:INSTANCE')
    count = data.get("count")
    if count is not None and count != "auto" and (
        isinstance(count, bool) or not isinstance(count, int) or count < 0
    ):
        raise ProtocolError('"count" must be a number >= 0 or "auto"')
    for flag in ("force", "rolling"):
        if not isinstance(data.get(flag, False), bool):
            raise ProtocolError(f'"{flag}" must be true or false')
    if data["cmd"] == "signal":
        try:
            data["signal"] = signal_number(data.get("signal"))
        except ValueError as e:
            raise ProtocolError(f'"signal": {e}') from None
    request: Request = {"cmd": data["cmd"]}
    if "target" in data:
        request["target"] = data["target"]
    if count is not None:
        request["count"] = count
    if data.get("force"):
        request["force"] = True
    if data.get("rolling"):
        request["rolling"] = True
    if data["cmd"] == "signal":
        request["signal"] = data["signal"]
    return request


def parse_response(data: bytes) -> Response:
    """Decode one response line; ProtocolError when it is not one."""
    try:
        response = json.loads(data)
    except (ValueError, RecursionError):
        raise ProtocolError(f"answer is not JSON: {data[:200]!r}") from None
    if not isinstance(response, dict) or not isinstance(response.get("ok"), bool):
        raise ProtocolError(f"answer lacks an ok field: {data[:200]!r}")
    result: Response = {"ok": response["ok"]}
    if "result" in response:
        result["result"] = response["result"]
    if isinstance(response.get("error"), str):
        result["error"] = response["error"]
    return result


def encode(message: Request | Response) -> bytes:
    return json.dumps(message, default=str).encode() + b"\n"
