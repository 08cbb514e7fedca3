"""No cgroup at all: cells that exist only in name, so callers need no special case.

Nothing is enforced or counted by the kernel, kill() admits it guarantees nothing, and
the caller falls back to what it does without cgroups (process groups, RSS polling).
"""

from __future__ import annotations

import dataclasses

from procpilot.controller.isolation.base import (
    Cell,
    LimitKind,
    Limits,
    Notes,
    Usage,
    check_cell_name,
)

_WHY = "isolation none: no cgroup"
_NO_USAGE = Usage(missing=dict.fromkeys(
    (f.name for f in dataclasses.fields(Usage) if f.name != "missing"), _WHY))


class NoneBackend(Notes):
    name = "none"
    roots: tuple[str, ...] = ()
    supports: frozenset[LimitKind] = frozenset()

    def __init__(self) -> None:
        super().__init__()

    def prepare(self) -> None:
        """Nothing to set up."""

    def create(self, name: str, limits: Limits) -> Cell:
        check_cell_name(name)
        return NoneCell(name)

    def leftovers(self) -> list[Cell]:
        return []

    def close(self) -> None:
        """Nothing to remove."""

    def abandon(self) -> None:
        """Nothing was made."""


class NoneCell:
    dirs: tuple[str, ...] = ()
    enforced: frozenset[LimitKind] = frozenset()

    def __init__(self, name: str) -> None:
        self.name = name

    def enter_argv(self) -> list[str]:
        return []

    def pids(self) -> list[int]:
        return []

    def kill(self) -> bool:
        return False

    def empty(self) -> bool:
        return True

    def remove(self) -> bool:
        return True

    def usage(self) -> Usage:
        return _NO_USAGE

    def oom_kills(self) -> int | None:
        return None

