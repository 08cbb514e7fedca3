from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from procpilot.controller.tail import CHUNK, Followed, follow, last_lines, lines


def test_lines_split_on_newline_only() -> None:
    assert lines(b"a\rb\nc\r\nd") == [b"a\rb\n", b"c\r\n", b"d"]
    assert lines(b"") == []


@pytest.mark.parametrize(
    ("content", "count", "expected"),
    [
        (b"1\n2\n3\n", 2, b"2\n3\n"),
        (b"1\n2\n3\n", 10, b"1\n2\n3\n"),
        (b"1\n2\n3", 1, b"3"),
        (b"1\n2\n3\n", 0, b""),
        (b"1\n2\n3\n", None, b"1\n2\n3\n"),
        (b"", 5, b""),
    ],
)
def test_last_lines(tmp_path: Path, content: bytes, count: int | None, expected: bytes) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(content)
    with open(path, "rb") as f:
        assert last_lines(f, count) == expected
        assert f.tell() == len(content)


def test_last_lines_reads_back_over_several_chunks(tmp_path: Path) -> None:
    line = b"x" * 1000 + b"\n"
    path = tmp_path / "big.log"
    path.write_bytes(b"first\n" + line * (3 * CHUNK // len(line)) + b"last\n")
    with open(path, "rb") as f:
        assert last_lines(f, 100) == line * 99 + b"last\n"


def test_followed_handles_truncation_and_late_creation(tmp_path: Path) -> None:
    path = tmp_path / "web-0.log"
    followed = Followed(str(path), b"")
    followed.open()
    assert followed.read() == b""  # not there yet
    path.write_bytes(b"hello\n")
    assert followed.read() == b"hello\n"
    path.write_bytes(b"")  # truncated in place (noticed while smaller than what was read)
    assert followed.read() == b""
    with open(path, "ab") as f:
        f.write(b"again\n")
    assert followed.read() == b"again\n"
    followed.close()


def test_follow_stops_on_request_and_survives_backups_zero_rotation(tmp_path: Path) -> None:
    path = tmp_path / "web-0.log"
    path.write_bytes(b"kept\n")
    out = io.BytesIO()
    steps = iter(range(100))

    def stop() -> bool:
        step = next(steps)
        if step == 1:
            with open(path, "ab") as f:
                f.write(b"last words\n")
            os.unlink(path)  # rotation with backups: 0 deletes the file
        if step == 3:
            path.write_bytes(b"fresh\n")
        return b"fresh\n" in out.getvalue()

    follow([str(path)], ["web:0"], out, 1, stop=stop, poll=0)
    assert out.getvalue() == b"kept\nlast words\nfresh\n"
