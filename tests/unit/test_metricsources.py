"""Reading a pool's work: what counts as one number, and what is an error saying why."""

from __future__ import annotations

import json
import math

import pytest

from procpilot.controller.metricsources import (
    MetricError,
    finite,
    parse_json_number,
    parse_number,
    parse_prometheus,
)


def answer(result_type: str, result: object, status: str = "success") -> bytes:
    return json.dumps({"status": status, "data": {"resultType": result_type,
                                                   "result": result}}).encode()


@pytest.mark.parametrize(("body", "value"), [
    (answer("scalar", [1.0, "42"]), 42.0),
    (answer("vector", [{"metric": {}, "value": [1.0, "7.5"]}]), 7.5),
    (answer("vector", []), 0.0),  # nothing queued is nothing to do
    (answer("vector", [{"metric": {}, "value": [1.0, "NaN"]}]), float("nan")),
])
def test_prometheus_answers(body: bytes, value: float) -> None:
    got = parse_prometheus(body)
    assert got == value or (math.isnan(got) and math.isnan(value))


@pytest.mark.parametrize(("body", "error"), [
    (answer("vector", [{"value": [1, "1"]}, {"value": [1, "2"]}]), "2 series; aggregate"),
    (answer("matrix", []), "a matrix, not one number"),
    (b'{"status": "error", "error": "parse error"}', "query failed: parse error"),
    (b"<html>", "not a Prometheus query answer"),
])
def test_prometheus_errors(body: bytes, error: str) -> None:
    with pytest.raises(MetricError, match=error):
        parse_prometheus(body)


def test_json_numbers() -> None:
    assert parse_json_number(b"12", None) == 12.0
    assert parse_json_number(b'{"queue": {"depth": 3}}', "queue.depth") == 3.0
    for body, field, error in [(b'{"queue": {}}', "queue.depth", "no field"),
                               (b"true", None, "not a number"),
                               (b'"5"', None, "not a number"),
                               (b"{", None, "not JSON")]:
        with pytest.raises(MetricError, match=error):
            parse_json_number(body, field)


def test_command_output_and_finite() -> None:
    assert parse_number(b" 17\n") == 17.0
    with pytest.raises(MetricError, match="not a number"):
        parse_number(b"lots\n")
    assert finite(3.0) == 3.0
    assert finite(float("inf")) is None and finite(float("nan")) is None
