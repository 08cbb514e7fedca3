"""/proc/<pid>/stat: one line with everything the per-scrape views need."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from procpilot.core.procfs.files import try_read

if TYPE_CHECKING:
    from procpilot.core.procfs.fs import FS

PF_KTHREAD = 0x00200000  # include/linux/sched.h: the task is a kernel thread


class Proc(NamedTuple):
    """One process as /proc/<pid>/stat shows it, in base units."""

    pid: int
    comm: str
    state: str  # the one-letter state code
    ppid: int
    pgrp: int
    session: int
    flags: int
    minflt: int  # minor page faults (no disk I/O needed)
    majflt: int  # major page faults (a page read from disk)
    utime: float  # seconds in user mode
    stime: float  # seconds in kernel mode
    num_threads: int
    start_ticks: int  # clock ticks after boot; with pid it names the process uniquely
    start_time: float  # unix seconds
    vsize_bytes: int  # virtual memory size
    rss_bytes: int
    key: tuple[int, int]  # (pid, start ticks): an identity that survives pid reuse

    @property
    def is_kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)

    @property
    def is_zombie(self) -> bool:
        """Ended, waiting for its parent to reap it. The state is the main thread's: a
        process whose main thread exited while other threads run shows Z too (ps: Zl), but
        it is still running, and still has more than one thread."""
        return self.state == "Z" and self.num_threads <= 1


_new_proc = tuple.__new__  # positional construction, skipping NamedTuple's Python-level __new__


def parse_stat(data: bytes, fs: FS) -> Proc:
    """Parse one /proc/<pid>/stat line.

    comm sits between the first " (" and the last ") " and may itself hold spaces,
    parentheses or newlines, so the fields are split only after the last ") ".
    This runs once per process per scrape, hence the plain, positional style.
    Raises ValueError when the line is not a stat line.
    """
    head, found_close, tail = data.rpartition(b") ")
    pid_text, found_open, comm = head.partition(b" (")
    if not (found_close and found_open):
        raise ValueError("no '(comm)' in stat line")
    f = tail.split(None, 22)  # f[0] is field 3 (state); field n of proc(5) is f[n - 3]
    if len(f) < 22:
        raise ValueError(f"stat line has {len(f) + 2} fields, want at least 24")
    pid = int(pid_text)
    start = int(f[19])
    ticks = fs.ticks
    return _new_proc(
        Proc,
        (
            pid,
            comm.decode("utf-8", "replace"),
            f[0].decode("ascii", "replace"),
            int(f[1]),  # ppid
            int(f[2]),  # pgrp
            int(f[3]),  # session
            int(f[6]),  # flags
            int(f[7]),  # minflt
            int(f[9]),  # majflt
            int(f[11]) / ticks,  # utime
            int(f[12]) / ticks,  # stime
            int(f[17]),  # num_threads
            start,
            fs.boot_time + start / ticks,
            int(f[20]),  # vsize
            max(int(f[21]), 0) * fs.page_size,  # rss
            (pid, start),
        ),
    )


def read_stat(fs: FS, pid: int | str) -> Proc | None:
    """One process's stat, None when it is gone or unreadable."""
    data = try_read(fs.path(pid, "stat"))
    if data is None:
        return None
    try:
        return parse_stat(data, fs)
    except ValueError:
        return None
