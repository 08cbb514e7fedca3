"""Limits the controller enforces itself, by measuring: memory over its limit restarts.

Only where the kernel does not keep the limit (no cgroup with a memory controller): the
sampler measures each instance's process tree every ``limits.check_interval``, and an
instance whose resident memory is over ``limits.memory`` is restarted with reason
``memory_limit`` through the usual backoff. Between two measurements nothing stops a
program from allocating more, which is why the kernel's limit is preferred.
"""

from __future__ import annotations

import logging

from procpilot.controller.program import Program
from procpilot.controller.states import State

log = logging.getLogger("procpilot.program")


def enforce_memory_limit(program: Program) -> None:
    """Restart each up instance whose last measured RSS is over the program's limit."""
    limit = program.config.limits.memory
    if limit is None:
        return
    for inst in program.instances.values():
        run = inst.run
        if run is None or "memory" in run.child.kernel_limits:
            continue
        if run.rss_bytes is None or run.rss_bytes <= limit:
            continue
        if inst.state in (State.STARTING, State.RUNNING):
            log.warning("instance over its memory limit; restarting", extra={"fields": {
                "program": program.name, "instance": inst.id, "rss_bytes": run.rss_bytes,
                "limit_bytes": limit}})
            program.stop_for(inst, "memory_limit")
