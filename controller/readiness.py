"""Readiness and liveness: when a started process counts as ready, and when a process is
restarted for not showing that it is alive.

An instance is *running* once it is ready: up for ``start_seconds`` (the default), or when it
sent READY=1 (``ready: notify``), or at its first passing health check (``ready: health``).
An exit before that is a failed start; not ready within ``ready_timeout`` restarts it. A
health check restarts it after ``failure_threshold`` failures in a row, and once it is
ready, a ``watchdog`` restarts it unless WATCHDOG=1 keeps coming.

These are plain functions of a :class:`~procpilot.controller.program.Program`, like
``limits``: the moves they lead to (``mark_ready``, ``stop_for``) are its state machine's.
A timer or a check can fire after its process was replaced, so each checks that the process
is still the instance's current one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from procpilot.controller import health
from procpilot.controller.notify import Notice
from procpilot.controller.states import State

if TYPE_CHECKING:
    from procpilot.controller.instance import Instance, Run
    from procpilot.controller.program import Program

log = logging.getLogger("procpilot.program")  # one logger for what happens to a program


def watch(program: Program, inst: Instance, run: Run) -> None:
    """Arm what decides about a just-started process: the start_seconds or ready_timeout
    timer (the instance's timer) and its health check."""
    c = program.config
    loop = program.rt.loop
    if c.ready == "start_seconds":
        inst.timer = loop.call_later(c.start_seconds, program.mark_ready, inst, run)
    else:
        inst.timer = loop.call_later(c.ready_seconds, _not_ready_in_time, program, inst, run)
    check = c.health
    if check is not None:
        spec = program.spawn_spec(inst.index)
        run.health = loop.create_task(health.monitor(
            check, lambda: program.rt.healthy(check, spec),
            lambda: _unhealthy(program, inst, run),
            (lambda: program.mark_ready(inst, run)) if c.ready == "health" else None))


def _not_ready_in_time(program: Program, inst: Instance, run: Run) -> None:
    inst.timer = None
    if inst.run is run and inst.state == State.STARTING:
        log.warning("instance not ready in time", extra={"fields": program.log_fields(
            inst, pid=run.child.pid, ready=program.config.ready,
            timeout=program.config.ready_seconds)})
        program.stop_for(inst, "ready_timeout")


def _unhealthy(program: Program, inst: Instance, run: Run) -> None:
    if inst.run is run and inst.state in (State.STARTING, State.RUNNING):
        log.warning("instance failed its health check",
                    extra={"fields": program.log_fields(inst, pid=run.child.pid)})
        program.stop_for(inst, "health")


def notified(program: Program, inst: Instance, run: Run, notice: Notice) -> None:
    """What a process said over NOTIFY_SOCKET (with ``ready: notify``)."""
    if notice.status is not None:
        run.status_text = notice.status
    if notice.stopping and not run.stopping:
        run.stopping = True
        log.info("instance says it is stopping",
                 extra={"fields": program.log_fields(inst, pid=run.child.pid)})
    if inst.run is not run:  # a replaced process: only its status and stopping count
        return
    if notice.ready:
        program.mark_ready(inst, run)
    if notice.watchdog_trigger:
        _watchdog_expired(program, inst, run)
    elif notice.watchdog:
        arm_watchdog(program, inst, run)


def arm_watchdog(program: Program, inst: Instance, run: Run) -> None:
    """Start the watchdog of a running process over again (when it became ready, and at
    each WATCHDOG=1)."""
    timeout = program.config.watchdog
    if timeout is None or inst.state != State.RUNNING:
        return
    if run.watchdog is not None:
        run.watchdog.cancel()
    run.watchdog = program.rt.loop.call_later(timeout, _watchdog_expired, program, inst, run)


def _watchdog_expired(program: Program, inst: Instance, run: Run) -> None:
    run.watchdog = None
    if inst.run is run and inst.state == State.RUNNING:
        log.warning("instance watchdog expired; restarting", extra={"fields": program.log_fields(
            inst, pid=run.child.pid, watchdog=program.config.watchdog)})
        program.stop_for(inst, "watchdog")
