from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from procpilot.core.units import (
    SIZE_UNITS,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h2m3s4ms", 3723.004),
        ("1.5s", 1.5),
        ("0s", 0.0),
        ("0", 0.0),
        ("2.5", 2.5),
        (" 10s ", 10.0),
        (0, 0.0),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad",
    ["", "-1s", -1, -0.5, "abc", "10x", "s", "1s1m", "1s1s", "1m 30s", "1e3s",
     float("inf"), float("nan"), True, None, [1]],
)
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|number"):
        parse_duration(bad)


def test_parse_duration_message_names_input() -> None:
    with pytest.raises(ValueError, match=r"'10 minutes'.*1m30s"):
        parse_duration("10 minutes")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512MiB", 512 * 1024**2),
        ("1GB", 10**9),
        ("1.5GiB", 3 * 1024**3 // 2),
        ("100KiB", 102400),
        ("100kB", 100000),
        ("100KB", 100000),
        ("4096", 4096),
        ("4096B", 4096),
        ("10 MiB", 10 * 1024**2),
        (4096, 4096),
        ("1.1MiB", 1153434),  # 1153433.6 rounds to the nearest byte
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "-1", -5, "1XB", "MiB", "1 2MiB", "1e3", True, None, 1.5e400])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


durations_ms = st.integers(min_value=0, max_value=10 * 365 * 86400 * 1000)


@given(durations_ms)
def test_duration_round_trip(millis: int) -> None:
    seconds = millis / 1000
    text = format_duration(seconds)
    assert parse_duration(text) == seconds


@given(
    st.fixed_dictionaries(
        {},
        optional={
            unit: st.integers(min_value=0, max_value=999)
            for unit in ("w", "d", "h", "m", "s", "ms")
        },
    )
)
def test_duration_components_add_up(parts: dict[str, int]) -> None:
    order = ("w", "d", "h", "m", "s", "ms")
    text = "".join(f"{parts[u]}{u}" for u in order if u in parts)
    seconds_per = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    expected_ms = sum(v * (1 if u == "ms" else seconds_per[u] * 1000) for u, v in parts.items())
    if not text:
        return
    assert parse_duration(text) == expected_ms / 1000


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(SIZE_UNITS)))
def test_size_round_trip_exact(count: int, unit: str) -> None:
    assert parse_size(f"{count}{unit}") == count * SIZE_UNITS[unit]
    assert parse_size(f"{count}{unit.upper()}") == count * SIZE_UNITS[unit]


@given(st.integers(min_value=0, max_value=2**60))
def test_format_size_reads_back_within_rounding(size: int) -> None:
    back = parse_size(format_size(size))
    # One decimal of the display unit (at least 1 KiB) is off by at most 5%.
    assert abs(back - size) <= size * 0.05


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (512, "512B"), (1024, "1.0KiB"), (25690112, "24.5MiB"), (3 * 1024**3, "3.0GiB")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.5, "500ms"), (192, "3m12s"), (3600, "1h"), (90061.5, "1d1h1m1s500ms")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


SCHEMA = json.loads((Path(__file__).parents[2] / "controller" / "config.schema.json").read_text())
DURATION_FIELD = SCHEMA["$defs"]["Restart"]["properties"]["delay"]
SIZE_FIELD = SCHEMA["$defs"]["Logs"]["properties"]["max_size"]
# Strings near the grammar: numbers, unit letters in both cases, dots, signs, spaces, and
# a few characters that only look like digits or spaces.
NEAR = st.text(alphabet="0123456789.ymwdhsbBkKmMgGiIpPtT -+\t\n\u0663\u00a0e", max_size=12)


def accepts(schema: dict[str, object], value: str) -> bool:
    return bool(jsonschema.Draft202012Validator(schema).is_valid(value))


def parses(parse: Callable[[object], object], value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


@given(NEAR)
def test_shipped_duration_schema_accepts_what_the_parser_accepts(value: str) -> None:
    assert accepts(DURATION_FIELD, value) == parses(parse_duration, value)


@given(NEAR)
def test_shipped_size_schema_accepts_what_the_parser_accepts(value: str) -> None:
    assert accepts(SIZE_FIELD, value) == parses(parse_size, value)


@pytest.mark.parametrize(("value", "accepted"), [
    ("1s1m", False), (".5s", True), ("1m30s", True), ("1ms", True), ("1m1ms", True),
    ("\u0663s", False), ("", False), ("s", False),
])
def test_duration_grammar_edges(value: str, accepted: bool) -> None:
    assert accepts(DURATION_FIELD, value) == parses(parse_duration, value) == accepted


@pytest.mark.parametrize(("value", "accepted"), [
    (".5MiB", True), ("1 kb", True), ("1KIB", True), ("1iB", False), ("5 5", False),
])
def test_size_grammar_edges(value: str, accepted: bool) -> None:
    assert accepts(SIZE_FIELD, value) == parses(parse_size, value) == accepted
