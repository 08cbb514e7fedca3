"""The order programs start and stop in: ``priority`` and ``depends_on``, as pure functions.

Priority groups start in ascending order, as always. ``depends_on`` refines that: a
dependency may not have a higher priority than its dependent (it would start later), so
both orders agree, and within one priority a program comes in a later *wave* than the
programs it depends on. A wave starts once the one before has settled; stopping goes
through the same waves backwards, so a program stops before what it depends on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

Graph = Mapping[str, Sequence[str]]  # program -> the programs it depends on


def problems(deps: Graph, priority: Mapping[str, int]) -> dict[str, str]:
    """What is wrong with each program's depends_on: an unknown name, a dependency that
    starts later by priority, or a cycle (named by its path)."""
    found: dict[str, str] = {}
    for name in sorted(deps):
        for dep in deps[name]:
            if dep not in deps:
                found[name] = f"no program named {dep!r}"
            elif priority[dep] > priority[name]:
                found[name] = (f"{dep} has priority {priority[dep]}, above {name}'s "
                               f"{priority[name]}: it would start later")
            if name in found:
                break
    for name in sorted(deps):
        if name not in found and (cycle := _cycle_through(name, deps)):
            found[name] = "a cycle: " + " -> ".join(cycle)
    return found


def _cycle_through(start: str, deps: Graph) -> list[str] | None:
    """A shortest path from start back to start (breadth first), or None."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        name = queue.popleft()
        for dep in deps.get(name, ()):
            if dep == start:
                path = [name]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if dep not in parent and dep in deps:
                parent[dep] = name
                queue.append(dep)
    return None


def closure(names: Iterable[str], deps: Graph) -> set[str]:
    """names and everything they depend on, directly or not."""
    found: set[str] = set()
    todo = [n for n in names if n in deps]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += [d for d in deps[name] if d in deps]
    return found


def waves(names: Iterable[str], deps: Graph, priority: Mapping[str, int]) -> list[list[str]]:
    """names in start order (stop order: reversed): by priority, and within one priority
    after the programs of that priority they depend on. Assumes ``problems`` found none."""
    depth: dict[str, int] = {}
    pending = sorted(deps)
    while pending:  # each pass settles at least one program: the graph has no cycle
        later = []
        for name in pending:
            same = [d for d in deps[name] if d in deps and priority[d] == priority[name]]
            if all(d in depth for d in same):
                depth[name] = 1 + max((depth[d] for d in same), default=-1)
            else:
                later.append(name)
        if len(later) == len(pending):
            raise ValueError(f"a cycle among {', '.join(later)}")
        pending = later

    keyed: dict[tuple[int, int], list[str]] = {}
    for name in sorted(set(names)):
        keyed.setdefault((priority[name], depth[name]), []).append(name)
    return [keyed[key] for key in sorted(keyed)]
