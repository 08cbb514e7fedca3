"""--log.level and --log.format (logfmt | json), shared by the exporter and the controller.

Structured fields go in ``extra={"fields": {...}}`` so both formats carry them as keys.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

LEVELS = ("debug", "info", "warn", "error")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    ms = int(record.msecs)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{ms:03d}Z"


def _level(record: logging.LogRecord) -> str:
    return "warn" if record.levelno == logging.WARNING else record.levelname.lower()


class LogfmtFormatter(logging.Formatter):
    @staticmethod
    def _value(value: object) -> str:
        text = "" if value is None else str(value)
        if text == "" or any(c in text for c in ' ="\n\\'):
            return json.dumps(text)
        return text

    def format(self, record: logging.LogRecord) -> str:
        pairs = {"ts": _timestamp(record), "level": _level(record), "logger": record.name}
        pairs["msg"] = record.getMessage()
        pairs.update(_fields(record))
        if record.exc_info:
            pairs["err"] = self.formatException(record.exc_info)
        return " ".join(f"{k}={self._value(v)}" for k, v in pairs.items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": _level(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["err"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info",
                        help="only log messages of this severity or above")
    parser.add_argument("--log.format", dest="log_format", choices=("logfmt", "json"),
                        default="logfmt", help="output format of log messages")


def setup(level: str, fmt: str) -> None:
    """Send all logging to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("WARNING" if level == "warn" else level.upper())
