"""Restart backoff and the give-up rule, as pure functions of an immutable state.

The runtime keeps one ``Backoff`` per instance and replaces it with the value ``record``
returns; time and randomness are arguments so that tests drive them.

- The n-th consecutive restart waits ``delay * factor**n`` (n from 0), capped at ``max_delay``,
  then spread by ``jitter``: multiplied by a factor in ``[1 - jitter, 1 + jitter]`` and capped
  again, so ``max_delay`` is a hard bound.
- An instance that stayed up ``reset_after`` seconds or more starts the sequence again at n=0.
- Give-up: a restart that would make more than ``max_restarts`` restarts within the last
  ``window`` seconds is not done; the instance goes to fatal instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from procpilot.controller.config import Restart


@dataclass(frozen=True)
class Backoff:
    """What the policy remembers about one instance's restarts."""

    attempt: int = 0
    """Consecutive restarts since the last reset: the n of ``delay * factor**n``."""
    restarts: tuple[float, ...] = ()
    """Times of the restarts within the window, oldest first."""


@dataclass(frozen=True)
class Verdict:
    backoff: Backoff
    delay: float
    """Seconds to wait before starting again; 0 when giving up."""
    give_up: bool


def delay_for(policy: Restart, attempt: int, rand: float) -> float:
    """Wait before restart number ``attempt`` (from 0); ``rand`` is uniform in [0, 1)."""
    if policy.delay == 0:  # factor**attempt may overflow, but zero stays zero
        return 0.0
    try:
        base = min(policy.delay * policy.factor**attempt, policy.max_delay)
    except OverflowError:
        base = policy.max_delay
    spread = 1 + policy.jitter * (2 * rand - 1)
    return min(base * spread, policy.max_delay)


def record(state: Backoff, policy: Restart, *, now: float, uptime: float, rand: float) -> Verdict:
    """Account for one restart wanted at ``now`` after the instance ran ``uptime`` seconds."""
    attempt = 0 if uptime >= policy.reset_after else state.attempt
    recent = (*(t for t in state.restarts if now - t < policy.window), now)
    if len(recent) > policy.max_restarts:
        return Verdict(Backoff(attempt, recent), 0.0, give_up=True)
    return Verdict(Backoff(attempt + 1, recent), delay_for(policy, attempt, rand), give_up=False)
