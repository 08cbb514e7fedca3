"""Build small fake procfs trees for cases the real /proc cannot produce on demand."""

from __future__ import annotations

import shutil
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
    utime: int = 0,
    stime: int = 0,
    threads: int = 1,
    start: int = 100,
    rss_pages: int = 10,
) -> bytes:
    """A /proc/<pid>/stat line with the proc(5) field layout (52 fields)."""
    pgrp = pid if pgrp is None else pgrp
    session = pid if session is None else session
    tail = [
        state, ppid, pgrp, session, 0, -1, flags,  # fields 3-9
        0, 0, 0, 0, utime, stime, 0, 0, 20, 0, threads, 0, start,  # 10-22
        1_000_000, rss_pages,  # 23-24: vsize, rss
    ] + [0] * 28  # 25-52
    return b"%d (%s) " % (pid, comm) + " ".join(str(v) for v in tail).encode() + b"\n"


class FakeProcfs:
    def __init__(self, root: Path, btime: int = BTIME) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "stat").write_bytes(b"cpu  1 2 3 4\nbtime %d\n" % btime)

    def add(self, pid: int, comm: bytes = b"proc", cmdline: bytes = b"", **fields: object) -> Path:
        d = self.root / str(pid)
        d.mkdir(exist_ok=True)
        (d / "stat").write_bytes(stat_line(pid, comm, **fields))  # type: ignore[arg-type]
        (d / "cmdline").write_bytes(cmdline)
        return d

    def remove(self, pid: int) -> None:
        shutil.rmtree(self.root / str(pid))
