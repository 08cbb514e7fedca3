"""The small /proc file parsers: /proc/stat, /proc/vmstat, cmdline, status, io, limits,
smaps_rollup, and the directory readers (threads, fds)."""

from __future__ import annotations

import dataclasses
import os
import resource
import threading

import pytest

from procpilot.core.procfs import FS
from procpilot.core.procfs.details import parse_cmdline
from procpilot.core.procfs.files import labeled, read_file
from procpilot.core.procfs.hoststat import parse_boot_time, parse_busy_seconds
from procpilot.core.procfs.io import IoBytes, parse_io
from procpilot.core.procfs.kernel import read_kernel_limits
from procpilot.core.procfs.limits import parse_open_files_limit
from procpilot.core.procfs.smaps import Proportional, parse_smaps_rollup
from procpilot.core.procfs.status import Status, parse_status
from procpilot.core.procfs.tasks import count_fds, thread_states
from procpilot.core.procfs.vmstat import parse_oom_kills

STAT = b"""cpu  100 5 50 1000 20 3 2 1 0 0
cpu0 50 2 25 500 10 1 1 0 0 0
intr 12345 1 2 3
btime 1700000000
processes 42
"""


def test_boot_time_and_busy_seconds() -> None:
    assert parse_boot_time(STAT) == 1_700_000_000.0
    # user nice system irq softirq steal: 100+5+50+3+2+1 ticks; idle and iowait excluded
    assert parse_busy_seconds(STAT, 100) == pytest.approx(1.61)


def test_stat_without_btime_or_cpu_fields() -> None:
    with pytest.raises(ValueError):
        parse_boot_time(b"cpu 1 2 3 4\n")
    with pytest.raises(ValueError):
        parse_busy_seconds(b"cpu 1 2\n", 100)


def test_oom_kills() -> None:
    assert parse_oom_kills(b"nr_free_pages 5\noom_kill 7\nfoo 1\n") == 7
    assert parse_oom_kills(b"nr_free_pages 5\n") is None


def test_cmdline() -> None:
    assert parse_cmdline(b"sleep\x0010\x00") == ("sleep", "10")
    assert parse_cmdline(b"") == ()
    assert parse_cmdline(b"a\xff\x00") == ("a\ufffd",)


# Literal files from a Debian 12 host (Linux 6.1), trimmed where marked.
STATUS = b"""Name:\tpostgres
Umask:\t0077
State:\tS (sleeping)
Tgid:\t812
Pid:\t812
PPid:\t1
Uid:\t105\t105\t105\t105
Gid:\t112\t112\t112\t112
FDSize:\t64
Groups:\t112 ...
VmPeak:\t  219164 kB
VmSize:\t  219132 kB
VmRSS:\t   29436 kB
VmSwap:\t     132 kB
Threads:\t1
voluntary_ctxt_switches:\t1791
nonvoluntary_ctxt_switches:\t27
"""
KTHREAD_STATUS = b"""Name:\tkworker/0:1
State:\tI (idle)
Threads:\t1
voluntary_ctxt_switches:\t5
nonvoluntary_ctxt_switches:\t0
"""
IO = b"""rchar: 2812341
wchar: 1174
syscr: 1034
syscw: 71
read_bytes: 3600384
write_bytes: 8192
cancelled_write_bytes: 4096
"""
LIMITS = b"\n".join([  # the kernel pads every column, the last one too
    b"Limit                     Soft Limit           Hard Limit           Units     ",
    b"Max cpu time              unlimited            unlimited            seconds   ",
    b"Max open files            1024                 524288               files     ",
    b"Max locked memory         8388608              8388608              bytes     ",
]) + b"\n"
ROLLUP = b"""55d0c4a4e000-7ffd2a5f3000 ---p 00000000 00:00 0                          [rollup]
Rss:               29436 kB
Pss:               11213 kB
Pss_Anon:           3120 kB
Swap:                132 kB
SwapPss:              66 kB
Locked:                0 kB
"""


def test_status_swap_and_switches() -> None:
    assert parse_status(STATUS) == Status(132 * 1024, 1791, 27)
    assert parse_status(KTHREAD_STATUS) == Status(0, 5, 0)  # no address space: no VmSwap
    with pytest.raises(ValueError, match="context switch"):
        parse_status(b"Name:\tx\nVmSwap:\t0 kB\n")


def test_io_storage_bytes_not_chars() -> None:
    assert parse_io(IO) == IoBytes(3600384, 8192)
    with pytest.raises(ValueError):
        parse_io(b"rchar: 1\n")


def test_open_files_limit_is_the_soft_one() -> None:
    assert parse_open_files_limit(LIMITS) == 1024
    assert parse_open_files_limit(LIMITS.replace(b"1024    ", b"unlimited")) is None
    with pytest.raises(ValueError):
        parse_open_files_limit(b"Limit   Soft Limit\n")


def test_smaps_rollup_pss_and_swap_pss() -> None:
    assert parse_smaps_rollup(ROLLUP) == Proportional(11213 * 1024, 66 * 1024)
    assert parse_smaps_rollup(b"") == Proportional(0, 0)  # a zombie's or kernel thread's


def test_labeled_finds_whole_labels_at_line_starts() -> None:
    assert labeled(b"x: 1\nvoluntary_ctxt_switches:\t7\n", b"voluntary_ctxt_switches:") == b"7"
    assert labeled(b"read_bytes: 5", b"read_bytes:") == b"5"  # first line, no newline
    with pytest.raises(ValueError, match="no value"):
        labeled(b"a:\nb: 1\n", b"a:")


def test_real_files_of_this_process() -> None:
    fs = FS.at()
    pid = os.getpid()
    status = parse_status(read_file(fs.path(pid, "status")))
    assert status.voluntary_switches >= 0
    assert parse_open_files_limit(read_file(fs.path(pid, "limits"))) == (
        resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    assert parse_smaps_rollup(read_file(fs.path(pid, "smaps_rollup"))).pss_bytes > 0
    parse_io(read_file(fs.path(pid, "io")))
    before = count_fds(fs, pid)
    with open(os.devnull):
        assert count_fds(fs, pid) == before + 1


def test_fd_count_without_the_size_shortcut() -> None:
    fs = FS.at()
    assert count_fds(dataclasses.replace(fs, fd_count_in_size=False), os.getpid()) == (
        len(os.listdir(f"/proc/{os.getpid()}/fd")))


def test_kernel_limits() -> None:
    limits = read_kernel_limits(FS.at())
    with open("/proc/sys/kernel/pid_max") as f:
        assert limits.pid_max == int(f.read())
    assert limits.threads_max is not None and limits.threads_max > 0


def test_thread_states_of_a_threaded_process() -> None:
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        states = thread_states(FS.at(), os.getpid())
        assert len(states) >= 2
        assert set(states) <= set("RSDTtZXxIWP")
    finally:
        stop.set()
        worker.join()
