"""The value types of the controller's config: how each kind of YAML value is read.

Each type normalises on load, so that the models hold only final values: durations become
float seconds, sizes int bytes, signals numbers, users and groups numeric ids, commands argv
tuples, CPU amounts cores. Each also carries the JSON Schema that editors see, since the
Python type alone (a float, an int) would refuse the strings people write.
"""

from __future__ import annotations

import grp
import pwd
import re
import shlex
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, SecretStr, WithJsonSchema

from procpilot.controller.isolation import MIN_CPU_CORES, check_cores
from procpilot.controller.protocol import signal_number
from procpilot.core.units import DURATION_PATTERN, SIZE_PATTERN, parse_duration, parse_size
from procpilot.core.web.flags import parse_listen_address

_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "description": "Duration: 500ms, 10s, 1m30s, 1h, or a number of seconds.",
}
_SIZE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": SIZE_PATTERN},
    ],
    "description": "Size: 4096, 512MiB, 1GB, 1.5GiB.",
}
_ARGV_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": ["string", "integer"]}, "minItems": 1},
    ]
}
_ID_SCHEMA: dict[str, Any] = {"type": ["string", "integer"]}


_CORE_SCHEMA: dict[str, Any] = {"anyOf": [_SIZE_SCHEMA, {"const": "unlimited"}]}
_UMASK_PATTERN = "^0?[0-7]{3}$"
_UMASK_SCHEMA: dict[str, Any] = {"type": "string", "pattern": _UMASK_PATTERN,
                                 "description": "Octal, as a string: '027'."}


def _core_size(value: object) -> object:
    return value if value == "unlimited" else parse_size(value)


def _umask(value: object) -> int:
    """'027' or '0027' -> 0o27; a YAML integer would be read as decimal, so it is refused."""
    if isinstance(value, str) and re.match(_UMASK_PATTERN, value):
        return int(value, 8)
    raise ValueError(f"{value!r}: expected an octal umask as a string, like '027'")


def _env_value(value: object) -> object:
    """A string (YAML numbers too), or {value: ..., secret: true} -> a SecretStr, whose
    repr and dump hide it. Errors never show the value."""
    if isinstance(value, dict):
        if set(value) - {"value", "secret"} or not isinstance(value.get("value"), str) \
                or value.get("secret", True) is not True:
            raise ValueError("expected a string, or {value: <string>, secret: true}")
        return SecretStr(value["value"])
    if not isinstance(value, int | float | str):
        raise ValueError("expected a string, or {value: <string>, secret: true}")
    return _scalar_str(value)


_ENV_SCHEMA: dict[str, Any] = {"anyOf": [
    {"type": ["string", "number"]},
    {"type": "object", "additionalProperties": False, "required": ["value"],
     "properties": {"value": {"type": "string"}, "secret": {"const": True}}},
]}


def _signal(value: object) -> int:
    """TERM, SIGTERM, term or 15 -> 15."""
    return signal_number(value)


def _scalar_str(value: object) -> object:
    """Let YAML numbers stand for strings (PORT: 8000); booleans are ambiguous, so refuse."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r}: a YAML boolean here is ambiguous; quote it")
    if isinstance(value, int | float):
        return str(value)
    return value


def _argv(value: object) -> object:
    """A command string is split like a shell would (without running one); lists stay lists."""
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as e:
            raise ValueError(f"cannot split command string: {e}") from None
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("command must not be empty")
        return [_scalar_str(v) for v in value]
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]
Bytes = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE_SCHEMA)]
SignalNumber = Annotated[
    int,
    BeforeValidator(_signal),
    WithJsonSchema({"type": ["string", "integer"], "description": "Signal name or number."}),
]
Text = Annotated[str, BeforeValidator(_scalar_str)]
EnvValue = Annotated[str | SecretStr, BeforeValidator(_env_value), WithJsonSchema(_ENV_SCHEMA)]
Argv = Annotated[tuple[Text, ...], BeforeValidator(_argv), WithJsonSchema(_ARGV_SCHEMA)]
CoreSize = Annotated[int | Literal["unlimited"], BeforeValidator(_core_size),
                     WithJsonSchema(_CORE_SCHEMA)]
Umask = Annotated[int, BeforeValidator(_umask), WithJsonSchema(_UMASK_SCHEMA)]


def _cores(value: object) -> object:
    """'50%' of one core -> 0.5; numbers are cores already."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"{value!r}: expected cores (0.5) or a percentage (50%)") from None
    return value


Cores = Annotated[
    float,
    BeforeValidator(_cores),
    # As a limit, inf (also "inf%", 1e400) would only fail at spawn and less than the minimum
    # be raised by the kernel; as an autoscale target neither is meaningful: refused at load.
    AfterValidator(check_cores),
    WithJsonSchema({"type": ["number", "string"],
                    "description": f"Cores (at least {MIN_CPU_CORES:g}), or '50%'."}),
]


def split_host_port(address: str) -> tuple[str, int]:
    """'127.0.0.1:8000' or '[::1]:8000' -> (host, port); ValueError when malformed.

    The listen-address parser, plus what a target to connect to needs: a host and a port.
    """
    try:
        host, port = parse_listen_address(address)
    except ValueError:
        host, port = "", 0
    if not host or not port:
        raise ValueError(f"{address!r}: expected host:port, e.g. 127.0.0.1:8000 or [::1]:8000")
    return host, port


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r}: expected an http:// or https:// URL with a host")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _uid(value: object) -> object:
    if isinstance(value, str) and not value.isdigit():
        try:
            return pwd.getpwnam(value).pw_uid
        except KeyError:
            raise ValueError(f"{value!r}: no such user") from None
    return value


def _gid(value: object) -> object:
    if isinstance(value, str) and not value.isdigit():
        try:
            return grp.getgrnam(value).gr_gid
        except KeyError:
            raise ValueError(f"{value!r}: no such group") from None
    return value


Uid = Annotated[int, BeforeValidator(_uid), WithJsonSchema(_ID_SCHEMA)]
Gid = Annotated[int, BeforeValidator(_gid), WithJsonSchema(_ID_SCHEMA)]
