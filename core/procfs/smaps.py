"""/proc/<pid>/smaps_rollup: proportional memory, each shared page divided among its users.

Costly: the kernel walks every page table entry of the process to produce it, which is
why the exporter reads it only for groups that ask (``pss: true``).
"""

from __future__ import annotations

from typing import NamedTuple

from procpilot.core.procfs.files import labeled_int


class Proportional(NamedTuple):
    pss_bytes: int  # resident memory, shared pages divided by the number of sharers
    swap_pss_bytes: int  # swapped-out memory, shared the same way


def parse_smaps_rollup(data: bytes) -> Proportional:
    """The Pss and SwapPss lines (kB); an empty file (no address space) is all zero."""
    if not data.strip():
        return Proportional(0, 0)
    swap = labeled_int(data, b"SwapPss:", 1024) if b"\nSwapPss:" in data else 0
    return Proportional(labeled_int(data, b"Pss:", 1024), swap)
