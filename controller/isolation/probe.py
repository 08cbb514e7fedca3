"""Which backend to use, decided from facts about this machine's cgroups.

:func:`gather` reads the facts (mounts from /proc/self/mountinfo, our own cgroups from
/proc/self/cgroup, the controllers offered there, writability); :func:`decide` is a pure
function from those facts to an ordered list of plans; :func:`choose` builds and prepares
the first plan that works. "auto" prefers, in order:

1. cgroup2, when it is the only hierarchy (pure v2) or offers memory, cpu or pids to us;
2. cgroup1, when any of the memory, cpu, cpuacct, pids, freezer hierarchies is usable;
3. cgroup2 without controllers, for containment only (procs, kill, cpu.stat still work);
4. none.

A forced backend that cannot work is an IsolationError saying why, never a fallback; so is
an explicit root that no hierarchy can use, even with auto.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from procpilot.controller.isolation import v1, v2
from procpilot.controller.isolation.base import Backend, IsolationError, read, root_name
from procpilot.controller.isolation.none import NoneBackend
from procpilot.core import cgroupfs
from procpilot.core.procfs import FS
from procpilot.core.procfs.cgroups import read_cgroups, read_mounts

CHOICES = ("auto", "cgroup2", "cgroup1", "none")
BackendName = Literal["cgroup2", "cgroup1", "none"]
_V1_GAPS = {
    "memory": "memory, memory_high and swap limits are not kernel-enforced",
    "cpu": "cpu limits are not kernel-enforced",
    "cpuacct": "no per-cell CPU time",
    "pids": "tasks limits are not kernel-enforced",
    "freezer": "kill() signals without freezing the cell first",
}


@dataclass(frozen=True)
class Place:
    """One hierarchy as seen from here, at the cgroup our cells' root goes in (our own
    cgroup) or that is the root (an explicit root)."""

    mount_point: str
    cgroup: str | None  # path inside the hierarchy; None: we are not in this hierarchy
    directory: str | None  # None: that cgroup is not visible under the mount
    exists: bool
    is_cgroup: bool  # has cgroup.procs
    writable: bool
    controllers: frozenset[str]  # v2: its cgroup.controllers; v1: the hierarchy's

    def problem(self) -> str | None:
        """Why cells cannot go here, or None."""
        if self.cgroup is None:
            return f"{self.mount_point}: this process is in no cgroup of it"
        if self.directory is None:
            return f"{self.mount_point}: cgroup {self.cgroup} is not visible under this mount"
        if not self.exists:
            return f"{self.directory}: does not exist"
        if not self.is_cgroup:
            return f"{self.directory}: not a cgroup (no cgroup.procs)"
        if not self.writable:
            return f"{self.directory}: not writable"
        return None


@dataclass(frozen=True)
class Facts:
    unified: Place | None  # None: no cgroup2 mount
    v1: Mapping[str, Place]  # the mounted hierarchies of v1.CONTROLLERS, by controller
    explicit_root: str | None = None


@dataclass(frozen=True)
class Plan:
    backend: BackendName
    controllers: tuple[str, ...] = ()  # cgroup1: the hierarchies to use
    notes: tuple[str, ...] = ()


def decide(requested: str, facts: Facts) -> list[Plan]:
    """Plans to try in order; IsolationError when a forced backend cannot work."""
    v2_problem = ("no cgroup2 mount in /proc/self/mountinfo" if facts.unified is None
                  else facts.unified.problem())
    usable = tuple(c for c in v1.CONTROLLERS if c in facts.v1 and facts.v1[c].problem() is None)
    v1_plan = Plan("cgroup1", usable, tuple(
        f"no usable {c} hierarchy: {_V1_GAPS[c]}" for c in v1.CONTROLLERS if c not in usable))
    if requested == "none":
        return [Plan("none", notes=("isolation none requested",))]
    if requested == "cgroup2":
        if v2_problem:
            raise IsolationError(f"cgroup2: {v2_problem}")
        return [Plan("cgroup2")]
    if requested == "cgroup1":
        if not usable:
            raise IsolationError("cgroup1: no usable hierarchy: " + "; ".join(_v1_problems(facts)))
        return [v1_plan]
    if requested != "auto":
        raise IsolationError(f"{requested!r}: isolation is one of {', '.join(CHOICES)}")
    plans = []
    offers = set(facts.unified.controllers) & set(v2.CONTROLLERS) if facts.unified else set()
    if not v2_problem and (not facts.v1 or offers):
        why = "pure cgroup2 host" if not facts.v1 else f"cgroup2 offers {' '.join(sorted(offers))}"
        plans.append(Plan("cgroup2", notes=(why,)))
    if usable:
        plans.append(v1_plan)
    if not v2_problem and not plans:
        plans.append(Plan("cgroup2", notes=("cgroup2 without controllers: containment only",)))
    reasons = [f"cgroup2: {v2_problem}"] if v2_problem else []
    plans.append(Plan("none", notes=(
        "no usable cgroup hierarchy", *reasons, *(f"cgroup1: {p}" for p in _v1_problems(facts)))))
    return plans


def _v1_problems(facts: Facts) -> list[str]:
    return [f"{c}: not mounted" if c not in facts.v1 else f"{c}: {facts.v1[c].problem()}"
            for c in v1.CONTROLLERS if c not in facts.v1 or facts.v1[c].problem()]


def _controllers(directory: str) -> frozenset[str]:
    try:
        return frozenset(read(os.path.join(directory, "cgroup.controllers")).decode().split())
    except (OSError, UnicodeDecodeError):
        return frozenset()


def _place(mount: cgroupfs.Mount, cgroup: str | None, unified: bool) -> Place:
    directory = cgroupfs.cgroup_dir(mount, cgroup) if cgroup else None
    if directory is None or not os.path.isdir(directory):
        return Place(mount.mount_point, cgroup, directory, False, False, False, frozenset())
    return Place(
        mount_point=mount.mount_point,
        cgroup=cgroup,
        directory=directory,
        exists=True,
        is_cgroup=os.path.exists(os.path.join(directory, "cgroup.procs")),
        writable=mount.writable and os.access(directory, os.W_OK),
        controllers=(_controllers(directory) if unified
                     else mount.super_options & cgroupfs.V1_CONTROLLERS),
    )


def gather(fs: FS, explicit_root: str | None = None) -> Facts:
    """Read the facts; OSError or ValueError when /proc cannot tell."""
    hierarchies = cgroupfs.cgroup_hierarchies(read_mounts(fs))
    own = read_cgroups(fs)
    unified = None
    if hierarchies.unified is not None:
        path = own.unified
        if path is not None and posixpath.basename(path) == v2.LEAF:
            path = posixpath.dirname(path)  # a restarted controller, still in its leaf
        unified = _place(hierarchies.unified, explicit_root or path, unified=True)
    places = {c: _place(m, explicit_root or own.v1.get(c), unified=False)
              for c, m in hierarchies.v1.items() if c in v1.CONTROLLERS}
    return Facts(unified, places, explicit_root)


_Built = v1.Cgroup1Backend | v2.Cgroup2Backend | NoneBackend


def build(plan: Plan, facts: Facts, identity: str) -> _Built:
    """The backend a plan describes, not yet prepared.

    The cells' root is always the owner's own directory in the base cgroup (our own, or an
    explicit root): an explicit root may be shared, and an owner's leftovers() must only
    ever see its own cells.
    """
    name = root_name(identity)
    backend: _Built
    if plan.backend == "cgroup2" and facts.unified and facts.unified.directory:
        base = facts.unified.directory
        backend = v2.Cgroup2Backend(os.path.join(base, name), base,
                                    may_move=facts.explicit_root is None)
    elif plan.backend == "cgroup1":
        backend = v1.Cgroup1Backend(
            {c: os.path.join(facts.v1[c].directory or "", name) for c in plan.controllers})
    else:
        backend = NoneBackend()
    for note in plan.notes:
        backend.note(note)
    return backend


def _prepare(backend: _Built) -> None:
    """backend.prepare(); when that fails, the roots it made meanwhile are removed again."""
    try:
        backend.prepare()
    except IsolationError:
        backend.abandon()
        raise


def choose(requested: str, identity: str, root: str | None = None,
           fs: FS | None = None) -> Backend:
    """A prepared backend for ``requested`` (auto, cgroup2, cgroup1, none).

    identity names the owner (see root_name); root, an absolute cgroup path, is where the
    owner's directory goes instead of our own cgroup: it must exist and be usable (else
    IsolationError, auto included), and nothing outside it is touched.
    """
    if root is not None and not root.startswith("/"):
        raise IsolationError(f"{root!r}: the cgroup root must be an absolute cgroup path")
    # Only auto without an explicit root may fall back to none: an operator who names a
    # root wants cells there, and running without any would go unnoticed.
    may_fall_back = requested == "auto" and root is None
    try:
        facts = gather(fs or FS.at(), root)
    except (OSError, ValueError) as e:
        if not may_fall_back and requested != "none":
            raise IsolationError(f"{requested}: cannot probe cgroups: {e}") from None
        fallback = NoneBackend()
        fallback.note(f"cannot probe cgroups: {e}")
        return fallback
    *candidates, last = decide(requested, facts)
    skipped = []
    for plan in candidates:  # auto only: its last plan is none, which cannot fail
        backend = build(plan, facts, identity)
        try:
            _prepare(backend)
        except IsolationError as e:
            skipped.append(f"{plan.backend} skipped: {e}")
            continue
        break
    else:
        if requested == "auto" and not may_fall_back:
            raise IsolationError(f"cgroup root {root} cannot be used: "
                                 + "; ".join([*last.notes, *skipped]))
        backend = build(last, facts, identity)
        _prepare(backend)  # a forced backend's IsolationError goes to the caller
    for note in skipped:
        backend.note(note)
    return backend
