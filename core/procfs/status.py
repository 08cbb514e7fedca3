"""/proc/<pid>/status: swapped-out memory and context switches.

The context switch counts are the thread group leader's own (the kernel prints the task
the file belongs to, not the sum over its threads), which is what other exporters that
read this file report too.
"""

from __future__ import annotations

from typing import NamedTuple

from procpilot.core.procfs.files import labeled_int


class Status(NamedTuple):
    swap_bytes: int
    voluntary_switches: int  # the task gave up the CPU (waited for I/O, a lock, a timer)
    involuntary_switches: int  # the scheduler took the CPU away


def parse_status(data: bytes) -> Status:
    """The fields above; VmSwap is absent without an address space (kernel threads, zombies)."""
    swap = labeled_int(data, b"VmSwap:", 1024) if b"\nVmSwap:" in data else 0
    return Status(swap, labeled_int(data, b"voluntary_ctxt_switches:"),
                  labeled_int(data, b"nonvoluntary_ctxt_switches:"))
