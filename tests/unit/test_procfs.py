"""The procfs snapshot: the stat parser, odd names, vanishing processes, caches."""

from __future__ import annotations

import contextlib
import os
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from procpilot.core.procfs import CMDLINE_LIMIT, FS, PF_KTHREAD, ProcReader, parse_stat
from tests.support.fakeproc import BTIME, Extra, FakeProcfs, stat_line

TICKS = os.sysconf("SC_CLK_TCK")
FAKE_FS = FS("/nonexistent", TICKS, os.sysconf("SC_PAGE_SIZE"), BTIME)
PAGE = os.sysconf("SC_PAGE_SIZE")


@given(
    pid=st.integers(1, 2**22),
    comm=st.binary(max_size=15).filter(lambda b: b"\0" not in b),
    state=st.sampled_from("RSDTtZXxIWP"),
    ppid=st.integers(0, 2**22),
    utime=st.integers(0, 2**40),
    threads=st.integers(1, 10**5),
    start=st.integers(0, 2**40),
    rss=st.integers(0, 2**30),
)
def test_parse_stat_any_comm(
    *,
    pid: int, comm: bytes, state: str, ppid: int, utime: int, threads: int, start: int, rss: int
) -> None:
    line = stat_line(pid, comm, state=state, ppid=ppid, utime=utime, threads=threads,
                     start=start, rss_pages=rss)
    p = parse_stat(line, FAKE_FS)
    assert (p.pid, p.state, p.ppid, p.num_threads) == (pid, state, ppid, threads)
    assert p.comm == comm.decode("utf-8", "replace")
    assert p.utime == utime / TICKS
    assert p.start_time == BTIME + start / TICKS
    assert p.rss_bytes == rss * PAGE


@given(st.binary(max_size=300))
def test_parse_stat_garbage_raises_value_error_only(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_stat(data, FAKE_FS)


@given(st.text(string.printable, max_size=40))
def test_parse_stat_truncated_lines(suffix: str) -> None:
    line = stat_line(7, b"x) y (z")[: 20 + len(suffix) % 60]
    with contextlib.suppress(ValueError):
        parse_stat(line, FAKE_FS)


def test_real_proc_self_matches_os() -> None:
    snap = ProcReader(FS.at()).snapshot()
    me = snap.procs[os.getpid()]
    assert me.ppid == os.getppid()
    assert me.pgrp == os.getpgrp()
    assert me.session == os.getsid(0)
    assert me.rss_bytes > 0
    assert snap.cmdline(me)[0].endswith(("python", "python3")) or "python" in snap.cmdline(me)[0]


@pytest.mark.parametrize(
    "comm",
    [b"with space", b"a) b (c", b"))((", b"new\nline", b"\xff\xfebad", b""],
)
def test_odd_comm_names(tmp_path: Path, comm: bytes) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, comm, ppid=1)
    p = ProcReader(FS.at(str(tmp_path))).snapshot().procs[10]
    assert p.comm == comm.decode("utf-8", "replace")
    assert p.ppid == 1


def test_non_utf8_and_huge_cmdline(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"odd", cmdline=b"/bin/\xff\xfe\0--flag\0")
    fake.add(11, b"huge", cmdline=b"x" * (4 * CMDLINE_LIMIT) + b"\0")
    snap = ProcReader(FS.at(str(tmp_path))).snapshot()
    assert snap.cmdline(snap.procs[10]) == ("/bin/\ufffd\ufffd", "--flag")
    (huge,) = snap.cmdline(snap.procs[11])
    assert len(huge) == CMDLINE_LIMIT


def test_kernel_thread_has_no_cmdline_or_exe(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(2, b"kthreadd", ppid=0, flags=PF_KTHREAD)
    snap = ProcReader(FS.at(str(tmp_path))).snapshot()
    k = snap.procs[2]
    assert k.is_kernel_thread
    assert snap.cmdline(k) == ()
    assert snap.exe(k) == ""


def test_vanished_and_unparsable_are_skipped_and_counted(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"ok")
    (tmp_path / "11").mkdir()  # gone between listdir and open: no stat file
    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "stat").write_bytes(b"not a stat line")
    (tmp_path / "13").mkdir()
    (tmp_path / "13" / "stat").mkdir()  # unreadable as a file
    (tmp_path / "self").mkdir()  # non-numeric entries are ignored
    snap = ProcReader(FS.at(str(tmp_path))).snapshot()
    assert list(snap.procs) == [10]
    assert snap.errors.vanished == 1
    assert snap.errors.parse == 2


def test_details_cached_per_process_and_refreshed_on_exec(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    d = fake.add(10, b"sh", cmdline=b"sh\0-c\0run\0")
    (d / "exe").symlink_to("/bin/sh")
    reader = ProcReader(FS.at(str(tmp_path)))
    snap = reader.snapshot()
    assert snap.exe(snap.procs[10]) == "/bin/sh"
    (d / "exe").unlink()
    (d / "exe").symlink_to("/bin/dash")
    snap = reader.snapshot()
    assert snap.exe(snap.procs[10]) == "/bin/sh"  # cached
    fake.add(10, b"server", cmdline=b"server\0--port\0")  # exec: same pid and start, new comm
    snap = reader.snapshot()
    assert snap.exe(snap.procs[10]) == "/bin/dash"
    assert snap.cmdline(snap.procs[10]) == ("server", "--port")  # never cached
    (d / "exe").unlink()
    fake.add(10, b"server", cmdline=b"other\0", start=999)  # pid reused by a new process
    snap = reader.snapshot()
    assert snap.exe(snap.procs[10]) == ""


def test_not_a_procfs_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="btime"):
        ProcReader(FS.at(str(tmp_path)))


def test_detail_reads_that_fail_are_counted_not_raised(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    d = fake.add(10, b"w")
    (d / "status").unlink()  # the process ended between reads
    (d / "io").unlink()
    (d / "io").mkdir()  # unreadable as a file
    (d / "smaps_rollup").write_bytes(b"garbage\nPss: many kB\n")
    snap = ProcReader(FS.at(str(tmp_path))).snapshot()
    p = snap.procs[10]
    assert snap.status(p) is None
    assert snap.io(p) is None
    assert snap.proportional(p) is None
    assert snap.open_fds(p) == 3
    assert (snap.errors.vanished, snap.errors.permission, snap.errors.parse) == (1, 0, 2)


def test_open_files_limit_cached_until_the_fds_approach_it(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"w", extra=Extra(nofile=1024))
    reader = ProcReader(FS.at(str(tmp_path)))
    p = reader.snapshot().procs[10]
    assert reader.snapshot().open_files_limit(p, 10) == 1024
    fake.add(10, b"w", extra=Extra(nofile=65536))  # the process raised its limit
    snap = reader.snapshot()
    assert snap.open_files_limit(p, 10) == 1024  # cached
    assert snap.open_files_limit(p, 600) == 65536  # at half the cached limit: read again
    fake.add(10, b"w", extra=Extra(nofile=None))
    assert reader.snapshot().open_files_limit(p, 40000) is None  # unlimited


def test_owner_read_once_per_process(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"w", extra=Extra(cgroup="0::/system.slice/a.service\n"))
    reader = ProcReader(FS.at(str(tmp_path)))
    snap = reader.snapshot()
    assert snap.owner(snap.procs[10]).unit == "a.service"
    fake.add(10, b"w", extra=Extra(cgroup="0::/system.slice/b.service\n"))
    snap = reader.snapshot()
    assert snap.owner(snap.procs[10]).unit == "a.service"  # cached
    fake.add(10, b"exec'd", extra=Extra(cgroup="0::/system.slice/b.service\n"))
    snap = reader.snapshot()
    assert snap.owner(snap.procs[10]).unit == "b.service"
    fake.add(10, b"again")
    (tmp_path / "10" / "cgroup").unlink()
    snap = reader.snapshot()
    assert snap.owner(snap.procs[10]).cgroup == ""
    assert snap.errors.vanished == 1
