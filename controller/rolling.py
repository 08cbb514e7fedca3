"""Rolling restarts, decided as a pure function: how many instances to replace next, and how.

A rolling restart replaces each active instance of a program once and keeps its capacity
the way Kubernetes' RollingUpdate does. Up to ``max_surge`` instances at a time are
replaced by *surge*: the new process starts next to the old one, which keeps serving until
the new one is ready and is then stopped. Up to ``max_unavailable`` more at a time are
stopped first and started again. With the defaults (surge 1, unavailable 0) a pool never
has fewer ready instances than before, and at most one process more.

Instances that are not ready (starting, in backoff, fatal) serve nothing: they are replaced
first, all at once, outside both allowances. They are the canary: if the new config cannot
make even them ready, the rollout halts before a serving instance is touched. A replacement
that does not become ready halts it too; what is already replaced stays, the rest keeps
running as it was. A program that leaves the config meanwhile ends its rollout at once
(its removal stops every instance).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from procpilot.controller.states import State

if TYPE_CHECKING:
    from procpilot.controller.instance import Instance
    from procpilot.controller.program import Program

ROLLED = (State.RUNNING, State.STARTING, State.BACKOFF, State.FATAL)  # what a rollout replaces


class Moves(NamedTuple):
    surge: int  # instances to replace by starting the new process first
    stop: int  # instances to replace by stopping them first


def next_moves(waiting: int, surging: int, stopped: int, max_surge: int,
               max_unavailable: int) -> Moves:
    """What to begin now, given the ready instances still ``waiting`` for their turn and
    the surges and stop-first replacements under way. Surges go first: they cost no
    capacity."""
    surge = min(waiting, max(max_surge - surging, 0))
    stop = min(waiting - surge, max(max_unavailable - stopped, 0))
    return Moves(surge, stop)


@dataclass(frozen=True)
class Outcome:
    replaced: int
    total: int
    halted: str | None = None  # the instance that did not become ready, and its state
    removed: bool = False  # abandoned: the program left the config

    @property
    def ending(self) -> str:
        return "halted" if self.halted else "abandoned" if self.removed else "done"

    def fields(self) -> dict[str, object]:
        return {"replaced": self.replaced, "instances": self.total,
                **({"halted_at": self.halted} if self.halted else {}),
                **({"abandoned": "program removed"} if self.removed else {})}

    def describe(self, program: str) -> str:
        done = f"{program}: {self.replaced} of {self.total} instances replaced"
        if self.removed:
            return f"{done}; abandoned: {program} left the config"
        return done if self.halted is None else f"{done}; halted: {self.halted} is not ready"


async def roll(program: Program, indexes: Sequence[int]) -> Outcome:
    """Replace each active instance among ``indexes`` once (see the module doc); returns
    once all are ready again or a replacement failed (those under way go on by themselves)."""
    policy = program.config.rollout
    slots = [i for i in (program.instances.get(n) for n in indexes)
             if i is not None and not i.retire and i.state in ROLLED]
    total = len(slots)
    unready = [i for i in slots if not i.ready]
    restarted = await asyncio.gather(*[f for i in unready for f in program.restart(i.index)])
    if program.removed:
        return Outcome(0, total, removed=True)
    for inst, state in zip(unready, restarted, strict=True):
        if state != State.RUNNING:
            return Outcome(0, total, f"{inst.id} ({state.value})")
    replaced = len(unready)
    waiting = deque(i for i in slots if i.ready)
    under_way: dict[asyncio.Future[State], tuple[Instance, bool]] = {}
    while waiting or under_way:
        surging = sum(surge for _, surge in under_way.values())
        moves = next_moves(len(waiting), surging, len(under_way) - surging, policy.max_surge,
                           policy.max_unavailable)
        for by_surge in [True] * moves.surge + [False] * moves.stop:
            inst = waiting.popleft()
            if inst.retire or program.instances.get(inst.index) is not inst \
                    or inst.state not in ROLLED:  # scaled away or stopped meanwhile
                total -= 1
                continue
            surge = by_surge and inst.state == State.RUNNING
            move = program.surge(inst) if surge else program.restart(inst.index)[0]
            under_way[move] = (inst, surge)
        if not under_way:
            continue
        finished, _ = await asyncio.wait(under_way, return_when=asyncio.FIRST_COMPLETED)
        if program.removed:
            return Outcome(replaced, total, removed=True)
        for move in finished:
            inst, _ = under_way.pop(move)
            if move.result() != State.RUNNING:
                return Outcome(replaced, total, f"{inst.id} ({move.result().value})")
            replaced += 1
    return Outcome(replaced, total)
