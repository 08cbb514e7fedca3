"""Control requests are validated once, where they are decoded."""

from __future__ import annotations

import pytest

from procpilot.controller.protocol import ProtocolError, parse_request, parse_response


@pytest.mark.parametrize(("line", "error"), [
    (b"garbage", "not JSON"),
    (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    (b'{"cmd": 3}', 'object with a "cmd" string'),
    (b'{"cmd": "format-disk"}', "unknown command 'format-disk'"),
    (b'{"cmd": "stop", "target": 7}', '"target" must be'),
    (b'{"cmd": "scale", "target": "a", "count": -1}', '"count" must be'),
    (b'{"cmd": "scale", "target": "a", "count": true}', '"count" must be'),
    (b'{"cmd": "scale", "target": "a", "count": 2, "force": "yes"}', '"force" must be'),
])
def test_malformed_requests_are_refused_with_a_reason(line: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        parse_request(line)


def test_well_formed_requests_keep_only_what_they_say() -> None:
    assert parse_request(b'{"cmd": "status", "extra": 1}') == {"cmd": "status"}
    assert parse_request(b'{"cmd": "scale", "target": "p", "count": "auto"}') == {
        "cmd": "scale", "target": "p", "count": "auto"}
    assert parse_request(b'{"cmd": "scale", "target": "p", "count": 3, "force": true}') == {
        "cmd": "scale", "target": "p", "count": 3, "force": True}


def test_responses_need_an_ok_field() -> None:
    assert parse_response(b'{"ok": false, "error": "no"}') == {"ok": False, "error": "no"}
    for bad in (b"[]", b'{"result": 1}', b"[" * 30_000):
        with pytest.raises(ProtocolError):
            parse_response(bad)
