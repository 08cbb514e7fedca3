"""Limits the controller enforces itself, by measuring: memory over its limit restarts.

The sampler measures each instance's process tree every ``limits.check_interval``; an
instance whose resident memory is over ``limits.memory`` is restarted with reason
``memory_limit`` through the usual backoff. Between two measurements nothing stops a
program from allocating more, which is why kernel-enforced limits are preferable.
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
        if run is None or run.rss_bytes is None or run.rss_bytes <= limit:
            continue
        if inst.state in (State.STARTING, State.RUNNING):
            log.warning("instance over its memory limit; restarting", extra={"fields": {
                "program": program.name, "instance": inst.id, "rss_bytes": run.rss_bytes,
                "limit_bytes": limit}})
            program.stop_for(inst, "memory_limit")
