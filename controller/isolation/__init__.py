"""Kernel isolation of supervised processes: one cgroup ("cell") per instance.

A cell gives what process groups cannot: a limit the kernel enforces (memory, cpu,
tasks), a kill that no double-forked, setsid()'d descendant escapes, and exact usage and
OOM-kill counters. Three backends share one protocol (base.py): cgroup v2 (v2.py), cgroup
v1 with each hierarchy used on its own (v1.py), and none (none.py), which does nothing so
that callers need no special case. probe.py picks one from facts about the machine.

A child enters its cell before its first instruction through an argv prefix
(:meth:`Cell.enter_argv`), a shell that writes to cgroup.procs and execs the rest, because
Popen's fast vfork path allows no code between fork and exec.
"""

from procpilot.controller.isolation.base import (
    CPU_PERIOD_US,
    ENTER_FAILED,
    LIMIT_KINDS,
    MIN_CPU_CORES,
    Backend,
    Cell,
    IsolationError,
    LimitKind,
    Limits,
    Usage,
    check_cores,
    kill_and_remove,
    kill_and_wait,
    root_name,
    safe_name,
)
from procpilot.controller.isolation.probe import CHOICES, choose

__all__ = [
    "CHOICES",
    "CPU_PERIOD_US",
    "ENTER_FAILED",
    "LIMIT_KINDS",
    "MIN_CPU_CORES",
    "Backend",
    "Cell",
    "IsolationError",
    "LimitKind",
    "Limits",
    "Usage",
    "check_cores",
    "choose",
    "kill_and_remove",
    "kill_and_wait",
    "root_name",
    "safe_name",
]
