"""Log sink: rotation between lines only, partial lines, reopen, prefixed output,
timestamps, tails, stderr apart."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from pathlib import Path

import pytest

from procpilot.controller.config import Logs
from procpilot.controller.logsink import (
    PARTIAL_LIMIT,
    TAIL_LINE_BYTES,
    TAIL_LINES,
    LogFiles,
    PipeReader,
    PrefixedStream,
    RotatingFile,
    Tail,
    Timestamps,
    instance_sinks,
    log_paths,
    rfc3339,
)
from procpilot.controller.reaper import Reaper
from procpilot.controller.spawn import SpawnSpec, spawn

pytestmark = pytest.mark.timeout(60)


def files_in_order(path: Path, backups: int) -> list[Path]:
    """Oldest first: path.N .. path.1, path."""
    rotated = [Path(f"{path}.{n}") for n in range(backups, 0, -1)]
    return [p for p in rotated if p.exists()] + [path]


def test_rotation_keeps_lines_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    f = RotatingFile(str(path), max_size=100, backups=50)
    lines = [f"line {i} " + "x" * (i % 23) + "\n" for i in range(200)]
    data = "".join(lines).encode()
    for start in range(0, len(data), 37):  # chunks that cut lines anywhere
        chunk = data[start : start + 37]
        cut = chunk.rfind(b"\n") + 1
        # Only whole lines reach write(complete=True); PipeReader guarantees that.
        if cut:
            f.write(chunk[:cut], complete=True)
        if chunk[cut:]:
            f.write(chunk[cut:], complete=False)
    f.close()
    files = files_in_order(path, 50)
    assert len(files) > 10
    joined = b"".join(p.read_bytes() for p in files)
    assert joined == data
    for p in files:
        content = p.read_bytes()
        assert content.endswith(b"\n"), p  # no line continues into the next file


def test_rotation_drops_oldest_beyond_backups(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    f = RotatingFile(str(path), max_size=10, backups=2)
    for i in range(10):
        f.write(f"{i:08d}\n".encode(), complete=True)  # 9 bytes: one line per file
    f.close()
    assert [p.read_text() for p in files_in_order(path, 5)] == [
        "00000007\n", "00000008\n", "00000009\n"]


def test_line_longer_than_a_file_gets_its_own(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    f = RotatingFile(str(path), max_size=10, backups=5)
    f.write(b"ab\n" + b"y" * 30 + b"\ncd\n", complete=True)
    f.close()
    assert [p.read_bytes() for p in files_in_order(path, 5)] == [
        b"ab\n", b"y" * 30 + b"\n", b"cd\n"]


def test_zero_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    f = RotatingFile(str(path), max_size=10, backups=0)
    f.write(b"12345678\n", complete=True)
    f.write(b"abcdefgh\n", complete=True)
    f.close()
    assert path.read_bytes() == b"abcdefgh\n"
    assert list(tmp_path.iterdir()) == [path]


def test_reopen_follows_a_moved_file(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    f = RotatingFile(str(path), max_size=1000, backups=1)
    f.write(b"before\n", complete=True)
    path.rename(tmp_path / "moved")
    f.reopen()
    f.write(b"after\n", complete=True)
    f.close()
    assert (tmp_path / "moved").read_bytes() == b"before\n"
    assert path.read_bytes() == b"after\n"


def test_prefixed_stream_prefixes_each_line() -> None:
    r, w = os.pipe()
    s = PrefixedStream("web:0 | ", fd=w)
    s.write(b"one\ntwo\n", complete=True)
    s.write(b"thr", complete=False)
    s.write(b"ee\n", complete=True)
    os.close(w)
    assert os.read(r, 1000) == b"web:0 | one\nweb:0 | two\nweb:0 | three\n"
    os.close(r)


def read_child_output(script: str, path: Path, max_size: int, backups: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reaper = Reaper(loop)
        reaper.install()
        try:
            child = spawn(SpawnSpec(argv=["/bin/sh", "-c", script]), reaper)
            assert child.output_fd is not None
            sink = RotatingFile(str(path), max_size, backups)
            reader = PipeReader(loop, child.output_fd, sink)
            await child.exited
            await reader.done
            sink.close()
        finally:
            reaper.uninstall()

    asyncio.run(main())


def test_flooding_child_output_is_complete(tmp_path: Path) -> None:
    path = tmp_path / "flood.log"
    n = 200_000
    read_child_output(f"seq 1 {n}; seq 1 {n} >&2", path, max_size=64 * 1024, backups=1000)
    files = files_in_order(path, 1000)
    assert len(files) > 5
    lines = b"".join(p.read_bytes() for p in files).split(b"\n")
    assert lines[-1] == b""
    numbers = [int(x) for x in lines[:-1]]
    assert numbers == list(range(1, n + 1)) * 2
    assert all(p.stat().st_size <= 64 * 1024 for p in files)


def test_partial_last_line_is_flushed_with_newline(tmp_path: Path) -> None:
    path = tmp_path / "p.log"
    read_child_output("printf 'done\\nno newline'", path, max_size=1000, backups=1)
    assert path.read_bytes() == b"done\nno newline\n"


def test_very_long_line_is_not_split(tmp_path: Path) -> None:
    path = tmp_path / "long.log"
    size = PARTIAL_LIMIT * 3
    read_child_output(f"printf 'a\\n'; head -c {size} /dev/zero | tr '\\0' x; printf '\\nb\\n'",
                      path, max_size=1000, backups=10)
    assert [p.read_bytes() for p in files_in_order(path, 10)] == [
        b"a\n", b"x" * size + b"\n", b"b\n"]


class Collect:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes, complete: bool) -> None:
        self.data += data


def test_timestamps_start_every_line_once_even_when_it_comes_in_pieces() -> None:
    out = Collect()
    clock = iter([1714564800.0, 1714564801.25, 1714564802.5])
    sink = Timestamps(out, lambda: next(clock))
    sink.write(b"a\nb\n", complete=True)
    sink.write(b"long li", complete=False)
    sink.write(b"ne\nc\n", complete=True)
    assert out.data.decode().splitlines() == [
        "2024-05-01T12:00:00.000Z a", "2024-05-01T12:00:00.000Z b",
        "2024-05-01T12:00:01.250Z long line", "2024-05-01T12:00:02.500Z c"]
    assert rfc3339(0.0015) == "1970-01-01T00:00:00.001Z"


def test_tail_keeps_the_last_lines_cut_short() -> None:
    lines: deque[bytes] = deque(maxlen=TAIL_LINES)
    out = Collect()
    tail = Tail(out, lines)
    tail.write(b"".join(b"%d\n" % n for n in range(100)), complete=True)
    tail.write(b"partial", complete=False)
    tail.write(b"x" * 1000 + b"\n", complete=True)
    assert list(lines) == [b"%d" % n for n in range(91, 100)] + [b"x" * TAIL_LINE_BYTES]
    assert out.data.endswith(b"99\npartial" + b"x" * 1000 + b"\n")


def test_separate_stderr_goes_to_its_own_file_with_timestamps(tmp_path: Path) -> None:
    logs = Logs(directory=str(tmp_path), stderr="separate", timestamps=True)
    files = LogFiles()
    lines: deque[bytes] = deque(maxlen=TAIL_LINES)
    out, err = instance_sinks(logs, "web", 2, files=files, clock=lambda: 0.0, tail=lines)
    assert err is not None
    out.write(b"hello\n", complete=True)
    err.write(b"oops\n", complete=True)
    files.close_all()
    assert (tmp_path / "web-2.log").read_text() == "1970-01-01T00:00:00.000Z hello\n"
    assert (tmp_path / "web-2.err.log").read_text() == "1970-01-01T00:00:00.000Z oops\n"
    assert list(lines) == [b"hello", b"oops"]
    assert log_paths(logs, "web", 2) == [str(tmp_path / "web-2.log"),
                                         str(tmp_path / "web-2.err.log")]


def test_output_after_the_file_was_closed_still_lands_in_it(tmp_path: Path) -> None:
    """A retired instance's file is closed while a leftover process may still write until
    its stop timeout: that output reopens the file instead of writing to no descriptor."""
    files = LogFiles()
    path = str(tmp_path / "web-0.log")
    sink = files.get(path, 1 << 20, 1)
    sink.write(b"before\n", complete=True)
    files.close(path)
    sink.write(b"after\n", complete=True)
    assert Path(path).read_bytes() == b"before\nafter\n"
    files.close_all()
    assert not [fd for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}") == path]


def test_a_forgotten_file_takes_late_output_but_holds_no_descriptor(tmp_path: Path) -> None:
    """A file no config names any more: its last writers' output still lands in it, but
    nothing keeps it open and reopen_all (SIGUSR1) does not bring it back."""
    files = LogFiles()
    path = str(tmp_path / "web-0.log")
    sink = files.get(path, 1 << 20, 1)
    sink.write(b"before\n", complete=True)
    files.forget(path)
    sink.write(b"after\n", complete=True)
    assert Path(path).read_bytes() == b"before\nafter\n"
    assert not [fd for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}") == path]
    os.unlink(path)
    files.reopen_all()
    assert not Path(path).exists()
    assert files.get(path, 1 << 20, 1) is not sink  # named again: a file of its own
    files.close_all()
