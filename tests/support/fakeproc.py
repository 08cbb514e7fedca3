"""Build small fake procfs trees for cases the real /proc cannot produce on demand."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

BTIME = 1_700_000_000


def stat_line(
    pid: int,
    comm: bytes,
    *,
    state: str = "S",
    ppid: int = 1,
    pgrp: int | None = None,
    session: int | None = None,
    flags: int = 0,
    minflt: int = 0,
    majflt: int = 0,
    utime: int = 0,
    stime: int = 0,
    threads: int = 1,
    start: int = 100,
    vsize: int = 1_000_000,
    rss_pages: int = 10,
) -> bytes:
    """A /proc/<pid>/stat line with the proc(5) field layout (52 fields)."""
    pgrp = pid if pgrp is None else pgrp
    session = pid if session is None else session
    tail = [
        state, ppid, pgrp, session, 0, -1, flags,  # fields 3-9
        minflt, 0, majflt, 0, utime, stime, 0, 0, 20, 0, threads, 0, start,  # 10-22
        vsize, rss_pages,  # 23-24
    ] + [0] * 28  # 25-52
    return b"%d (%s) " % (pid, comm) + " ".join(str(v) for v in tail).encode() + b"\n"


@dataclass
class Extra:
    """The per-process files besides stat and cmdline, as the kernel writes them."""

    swap_kb: int = 0
    voluntary: int = 0
    involuntary: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    fds: int = 3
    nofile: int | None = 1024  # soft limit; None: unlimited
    pss_kb: int = 0
    swap_pss_kb: int = 0
    cgroup: str = "0::/\n"

    def write(self, d: Path) -> None:
        (d / "status").write_bytes(
            b"Name:\tx\nState:\tS (sleeping)\nVmRSS:\t     40 kB\nVmSwap:\t%8d kB\n"
            b"Threads:\t1\nvoluntary_ctxt_switches:\t%d\nnonvoluntary_ctxt_switches:\t%d\n"
            % (self.swap_kb, self.voluntary, self.involuntary))
        (d / "io").write_bytes(
            b"rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: %d\nwrite_bytes: %d\n"
            b"cancelled_write_bytes: 0\n" % (self.read_bytes, self.write_bytes))
        soft = b"unlimited" if self.nofile is None else b"%d" % self.nofile
        (d / "limits").write_bytes(
            b"Limit                     Soft Limit           Hard Limit           Units     \n"
            b"Max processes             96362                96362                processes \n"
            b"Max open files            %-20s 524288               files     \n" % soft)
        (d / "smaps_rollup").write_bytes(
            b"00400000-7ffd0000 ---p 00000000 00:00 0                  [rollup]\n"
            b"Rss:                 100 kB\nPss:            %8d kB\nSwap:                  0 kB\n"
            b"SwapPss:        %8d kB\n" % (self.pss_kb, self.swap_pss_kb))
        (d / "cgroup").write_text(self.cgroup)
        fd = d / "fd"
        shutil.rmtree(fd, ignore_errors=True)
        fd.mkdir()
        for n in range(self.fds):
            (fd / str(n)).touch()


class FakeProcfs:
    def __init__(self, root: Path, btime: int = BTIME) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "stat").write_bytes(b"cpu  1 2 3 4\nbtime %d\n" % btime)

    def add(self, pid: int, comm: bytes = b"proc", cmdline: bytes = b"",
            extra: Extra | None = None, **fields: object) -> Path:
        d = self.root / str(pid)
        d.mkdir(exist_ok=True)
        (d / "stat").write_bytes(stat_line(pid, comm, **fields))  # type: ignore[arg-type]
        (d / "cmdline").write_bytes(cmdline)
        (extra or Extra()).write(d)
        return d

    def remove(self, pid: int) -> None:
        shutil.rmtree(self.root / str(pid))
