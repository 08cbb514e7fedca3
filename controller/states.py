"""Instance states and the pure decisions that move an instance between them.

=========  ==============================================  ==================================
From       Event                                           To
=========  ==============================================  ==================================
stopped    start (autostart, procpilotctl start)           starting
exited     start                                           starting
fatal      start (procpilotctl start; backoff reset)       starting
backoff    delay elapsed, or procpilotctl start            starting
backoff,   stop (procpilotctl stop, shutdown, scale down)  stopped
exited,
fatal
starting   ready: up for start_seconds, READY=1 (notify)   running
             or a first passing health check (health)
running    replaced with a surge (rolling restart): a      starting
             new process starts, the old one serves on
             until the new one is ready
starting,  stop or controller restart (manual,             stopping
running      memory_limit, health, watchdog,
             ready_timeout): stop signal sent
starting,  exit (see ``on_exit``)                          backoff, starting, exited, fatal
running,                                                   or stopped
stopping
=========  ==============================================  ==================================

``on_exit`` decides what an exit means:

- a plain stop ends in stopped, whatever the exit status;
- a manual restart starts again at once, without touching the backoff;
- otherwise policy ``never``, or policy ``on-failure`` with a clean exit (an exit code in
  ``exit_codes``, not a signal, not forced by the controller), ends in exited;
- anything else is a restart that counts: backoff with a delay, or fatal when the give-up
  rule says so. Its reason is the controller's cause (memory_limit, health, oom_kill,
  watchdog, ready_timeout) if there is one, else failed_start when the process never became
  ready (running), else signal or exit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple, get_args

from procpilot.controller.backoff import Backoff, record
from procpilot.controller.config import ProgramConfig
from procpilot.core.signals import signal_name


class State(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    EXITED = "exited"
    FATAL = "fatal"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.STOPPED: frozenset({State.STARTING}),
    State.EXITED: frozenset({State.STARTING, State.STOPPED}),
    State.FATAL: frozenset({State.STARTING, State.STOPPED}),
    State.BACKOFF: frozenset({State.STARTING, State.STOPPED}),
    State.STARTING: frozenset(
        {State.RUNNING, State.STOPPING, State.BACKOFF, State.EXITED, State.FATAL}
    ),
    State.RUNNING: frozenset(
        {State.STARTING, State.STOPPING, State.BACKOFF, State.EXITED, State.FATAL}
    ),
    State.STOPPING: frozenset(
        {State.STOPPED, State.BACKOFF, State.STARTING, State.EXITED, State.FATAL}
    ),
}
"""Allowed moves, the table above as data; the runtime checks each move with ``check``."""

# ProgramConfig state for procpilot_program_state: the first of these found among its instances.
# Trouble first (fatal, backoff), then motion (starting, stopping), then rest.
AGGREGATE_ORDER = (
    State.FATAL,
    State.BACKOFF,
    State.STARTING,
    State.STOPPING,
    State.RUNNING,
    State.EXITED,
    State.STOPPED,
)

Cause = Literal["stop", "manual", "memory_limit", "health", "oom_kill", "watchdog",
                "ready_timeout"]
"""Why the controller expects an exit: it asked for a stop or a restart, or saw an OOM kill."""
Reason = Literal[
    "exit", "signal", "failed_start", "memory_limit", "oom_kill", "health", "watchdog",
    "ready_timeout", "manual", "stopped"
]
"""How an exit is reported: last_exit.reason, and the reason label of restarts_total."""
RESTART_REASONS: tuple[str, ...] = tuple(r for r in get_args(Reason) if r != "stopped")
"""The reasons an exit can be counted as a restart with (a stop is not a restart)."""


def check(old: State, new: State) -> None:
    """Raise ValueError on a move the table does not allow (a bug in the runtime)."""
    if new not in TRANSITIONS[old]:
        raise ValueError(f"illegal state transition {old} -> {new}")


class ExitStatus(NamedTuple):
    """How a process ended: exactly one of code and signal is set."""

    code: int | None
    signal: int | None

    @classmethod
    def from_wait_status(cls, status: int) -> ExitStatus:
        if os.WIFSIGNALED(status):
            return cls(None, os.WTERMSIG(status))
        return cls(os.WEXITSTATUS(status), None)

    @property
    def shell_code(self) -> int:
        """The status as a shell reports it, signal n as 128 + n (the exit_code metric)."""
        return self.code if self.code is not None else 128 + (self.signal or 0)

    def describe(self) -> str:
        if self.signal is not None:
            return f"killed by {signal_name(self.signal)}"
        return f"exit code {self.code}"


FAILED_SPAWN = ExitStatus(127, None)  # reported for a command that could not start, as a shell does


@dataclass(frozen=True)
class Exit:
    """One exit of an instance: how it ended, after how long, and when."""

    status: ExitStatus
    uptime: float
    """Seconds between spawn and exit (0 for a spawn that failed)."""
    time: float
    """When it exited (the loop clock, as everywhere in the runtime)."""
    ready: bool
    """Whether it had become ready (reached running) before it exited."""


@dataclass(frozen=True)
class Outcome:
    state: State
    """BACKOFF, STARTING (immediately), EXITED, FATAL or STOPPED."""
    reason: Reason
    backoff: Backoff
    delay: float
    """Seconds to wait in BACKOFF; 0 otherwise."""

    @property
    def restarts(self) -> bool:
        """Whether this exit is a restart, counted in procpilot_program_restarts_total."""
        return self.state in (State.BACKOFF, State.STARTING)


def classify(program: ProgramConfig, exited: Exit, cause: Cause | None) -> Reason:
    """The reason an exit is reported with."""
    if cause == "stop":
        return "stopped"
    if cause is not None:
        return cause
    if not exited.ready:
        return "failed_start"
    return "signal" if exited.status.signal is not None else "exit"


def on_exit(
    program: ProgramConfig, exited: Exit, cause: Cause | None, backoff: Backoff, rand: float
) -> Outcome:
    """Next state after an exit; ``rand`` in [0, 1) draws the jitter."""
    reason = classify(program, exited, cause)
    if cause == "stop":
        return Outcome(State.STOPPED, reason, backoff, 0.0)
    if cause == "manual":
        return Outcome(State.STARTING, reason, backoff, 0.0)
    policy = program.restart
    status = exited.status
    clean = cause is None and status.signal is None and status.code in policy.exit_codes
    if policy.policy == "never" or (policy.policy == "on-failure" and clean):
        return Outcome(State.EXITED, reason, backoff, 0.0)
    verdict = record(backoff, policy, now=exited.time, uptime=exited.uptime, rand=rand)
    if verdict.give_up:
        return Outcome(State.FATAL, reason, verdict.backoff, 0.0)
    return Outcome(State.BACKOFF, reason, verdict.backoff, verdict.delay)


def aggregate(states: Iterable[State]) -> State:
    """A program's state from its instances' (see AGGREGATE_ORDER); none at all is stopped."""
    present = set(states)
    return next((s for s in AGGREGATE_ORDER if s in present), State.STOPPED)
