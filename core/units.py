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

_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
_PLAIN = re.compile(rf"(?:{_NUMBER})")
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|[ywdhms])")
_SIZE = re.compile(rf"({_NUMBER})\s*([A-Za-z]*)")
# Order in which duration units must appear; "ms" comes after "s".
_DURATION_ORDER = ("y", "w", "d", "h", "m", "s", "ms")
_DURATION_HINT = "expected a duration like 500ms, 10s, 1m30s, 1h or a number of seconds"
_SIZE_HINT = "expected a size like 4096, 512MiB, 1GB or 1.5GiB"


def _number(value: object, hint: str) -> Decimal | None:
    """A plain non-negative number, or None when value is a string with units."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r}: {hint}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r}: must be a finite number >= 0 ({hint})")
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r}: {hint}")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"{value!r}: must not be negative ({hint})")
    return Decimal(text) if _PLAIN.fullmatch(text) else None


def parse_duration(value: object) -> float:
    """Seconds in a duration string or plain number; ValueError naming the input otherwise."""
    plain = _number(value, _DURATION_HINT)
    if plain is not None:
        return float(plain)
    text = str(value).strip()
    total = Decimal(0)
    position = 0
    last_rank = -1
    for match in _DURATION_PART.finditer(text):
        rank = _DURATION_ORDER.index(match.group(2))
        if match.start() != position or rank <= last_rank:
            break
        multiplier = Decimal("0.001") if match.group(2) == "ms" else DURATION_UNITS[match.group(2)]
        total += Decimal(match.group(1)) * multiplier
        position, last_rank = match.end(), rank
    if position == 0 or position != len(text):
        raise ValueError(f"{value!r}: {_DURATION_HINT} (units y w d h m s ms, largest first)")
    return float(total)


def parse_size(value: object) -> int:
    """Bytes in a size string or plain number, rounded to a whole byte; ValueError otherwise."""
    plain = _number(value, _SIZE_HINT)
    if plain is not None:
        return int(plain.to_integral_value(ROUND_HALF_EVEN))
    match = _SIZE.fullmatch(str(value).strip())
    multiplier = SIZE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or multiplier is None:
        units = "B kB MB GB TB PB KiB MiB GiB TiB PiB"
        raise ValueError(f"{value!r}: {_SIZE_HINT} (units {units})")
    return int((Decimal(match.group(1)) * multiplier).to_integral_value(ROUND_HALF_EVEN))


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
