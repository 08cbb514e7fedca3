"""Durations and sizes as operators write them in config files, and back again for display.

Durations follow Prometheus (``500ms``, ``10s``, ``1m30s``, ``1h``, ``1d``): units from largest
to smallest, each at most once. Decimal components (``1.5s``) and plain numbers of seconds are
accepted too. Sizes take SI (``kB``, ``MB``, ``GB``: powers of 1000) and IEC (``KiB``,
``MiB``, ``GiB``: powers of 1024) units or plain bytes. Arithmetic is done in Decimal so that
``1.5GiB`` is exact and ``0.1s`` is the float 0.1, not a sum of float errors.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal

DURATION_UNITS: dict[str, int] = {
    "y": 365 * 86400,
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
    "m": 60,
    "s": 1,
}
# Keys are lower case; parsing is case-insensitive ("mb" is never millibits here).
SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
}
# Display units for format_size, largest first.
_IEC_DISPLAY = (
    ("PiB", 1024**5),
    ("TiB", 1024**4),
    ("GiB", 1024**3),
    ("MiB", 1024**2),
    ("KiB", 1024),
)

# The grammar, as regular expressions that are also the JSON Schema patterns of the config
# files (so an editor and the parser accept the same strings). Digits are ASCII only, and
# the patterns are written in the subset JavaScript and Python regexes share.
_NUMBER = r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+"
# Order in which duration units must appear, each at most once; "ms" comes after "s".
_DURATION_ORDER = ("y", "w", "d", "h", "m", "s", "ms")
DURATION_PATTERN = (
    rf"^\s*(?:{_NUMBER}|(?=[0-9.])"
    + "".join(rf"(?:(?:{_NUMBER}){unit})?" for unit in _DURATION_ORDER)
    + r")\s*$"
)
_SIZE_UNIT = "|".join(
    "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in unit) for unit in SIZE_UNITS
)
SIZE_PATTERN = rf"^\s*(?:{_NUMBER})\s*(?:{_SIZE_UNIT})?\s*$"

_PLAIN = re.compile(_NUMBER)
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|[ywdhms])")
_SIZE = re.compile(SIZE_PATTERN)
_SIZE_PART = re.compile(rf"({_NUMBER})\s*([A-Za-z]*)")
_DURATION_HINT = "expected a duration like 500ms, 10s, 1m30s, 1h or a number of seconds"
_SIZE_HINT = "expected a size like 4096, 512MiB, 1GB or 1.5GiB"


def _checked(value: object, grammar: re.Pattern[str], hint: str) -> Decimal | str:
    """A YAML number as a Decimal, or a string the grammar accepts, stripped."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r}: {hint}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r}: must be a finite number >= 0 ({hint})")
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"{value!r}: must not be negative ({hint})")
    if not grammar.match(value):
        raise ValueError(f"{value!r}: {hint}")
    return text


def parse_duration(value: object) -> float:
    """Seconds in a duration string or plain number; ValueError naming the input otherwise."""
    hint = f"{_DURATION_HINT} (units y w d h m s ms, largest first, each once)"
    text = _checked(value, _DURATION, hint)
    if isinstance(text, Decimal):
        return float(text)
    if _PLAIN.fullmatch(text):
        return float(Decimal(text))
    total = Decimal(0)
    for number, unit in _DURATION_PART.findall(text):
        multiplier = Decimal("0.001") if unit == "ms" else DURATION_UNITS[unit]
        total += Decimal(number) * multiplier
    return float(total)


def parse_size(value: object) -> int:
    """Bytes in a size string or plain number, rounded to a whole byte; ValueError otherwise."""
    hint = f"{_SIZE_HINT} (units B kB MB GB TB PB KiB MiB GiB TiB PiB)"
    text = _checked(value, _SIZE, hint)
    if isinstance(text, Decimal):
        return int(text.to_integral_value(ROUND_HALF_EVEN))
    match = _SIZE_PART.fullmatch(text)
    assert match is not None  # the grammar matched
    multiplier = SIZE_UNITS[match[2].lower()] if match[2] else 1
    return int((Decimal(match[1]) * multiplier).to_integral_value(ROUND_HALF_EVEN))


def format_duration(seconds: float) -> str:
    """Exact Prometheus-style rendering to the millisecond: 192 -> '3m12s', 0.5 -> '500ms'.

    Round to whole seconds first for a human display (uptimes); parse_duration reads it back.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{seconds!r}: cannot format a negative or infinite duration")
    millis = int((Decimal(repr(float(seconds))) * 1000).to_integral_value(ROUND_HALF_EVEN))
    if millis == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, millis = divmod(millis, DURATION_UNITS[unit] * 1000)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


def format_size(size: int) -> str:
    """Human IEC rendering with one decimal: 25690112 -> '24.5MiB', 512 -> '512B'."""
    if size < 0:
        raise ValueError(f"{size!r}: cannot format a negative size")
    for unit, multiplier in _IEC_DISPLAY:
        if size >= multiplier:
            return f"{size / multiplier:.1f}{unit}"
    return f"{size}B"
