"""Who a process belongs to, read from its cgroup path: the systemd unit, the container
(or Kubernetes pod), and the procpilot-controller program that runs it.

Pure functions of the path from /proc/<pid>/cgroup, so every layout is tested with the
literal paths real hosts produce. The rules, innermost path component first:

- unit: a component ending in ``.service`` or ``.scope`` (``nginx.service``,
  ``session-3.scope``, ``docker-<id>.scope``);
- container: a component that is a 64-hex-digit id, bare (cgroupfs drivers: ``/docker/<id>``,
  ``/kubepods/.../pod<uid>/<id>``) or as ``docker-``, ``cri-containerd-``, ``crio-`` or
  ``libpod-`` followed by the id and ``.scope`` (systemd drivers). Container monitors
  (``crio-conmon-<id>.scope``, ``libpod-conmon-<id>.scope``) are not the container;
- pod: a Kubernetes pod uid, ``pod<uid>`` or ``kubepods-<qos>-pod<uid>.slice`` (where
  systemd spells the dashes of the uid as underscores);
- program: a component starting ``procpilot-`` (the root of one controller's cells, named
  after its escaped control socket) followed by a cell ``<program>-<index>-<n>`` (also
  accepted: ``<program>-<index>``). procpilot-run's root ``procpilot-run`` holds one-off
  commands, not programs, and ``procpilot-supervisor`` is where a controller moves itself.

Paths outside the reader's cgroup namespace start with ``/..``; those components are skipped.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from procpilot.core.cgroupfs import ProcCgroups

_UNIT = re.compile(r".+\.(?:service|scope)")
_CONTAINER = re.compile(r"(?:(?:docker|cri-containerd|crio|libpod)-)?([0-9a-f]{64})(?:\.scope)?")
_UUID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
_POD = re.compile(rf"(?:kubepods(?:-[a-z]+)*-)?pod({_UUID})(?:\.slice)?")
_CELL = re.compile(r"(.+?)-\d+(?:-\d+)?")
_NOT_CELL_ROOTS = frozenset({"procpilot-run", "procpilot-supervisor"})


class Owner(NamedTuple):
    cgroup: str  # the path the rest was read from ("" when it could not be read)
    unit: str = ""
    container: str = ""  # a container id
    pod: str = ""  # a Kubernetes pod uid, with dashes
    program: str = ""

    @property
    def label(self) -> str:
        """The most specific owner as one label value: ``program:web``, ``container:<id>``,
        ``pod:<uid>``, ``unit:nginx.service``, or empty when there is none."""
        for kind, name in (("program", self.program), ("container", self.container),
                           ("pod", self.pod), ("unit", self.unit)):
            if name:
                return f"{kind}:{name}"
        return ""


def cgroup_path(cgroups: ProcCgroups) -> str:
    """The path that says where a process was placed: one that holds a procpilot-controller
    cell, in any hierarchy; else the unified (v2) one, else systemd's named v1 hierarchy,
    else the first v1 controller (by name) not at the root.

    The cell comes first because a controller on a v1 or hybrid host makes cells only in
    the hierarchies of the controllers it uses (memory, cpu, pids, freezer): the unified and
    systemd paths then show only the controller's own unit.
    """
    v1 = cgroups.v1
    candidates = (cgroups.unified, v1.get("name=systemd"), *(v1[k] for k in sorted(v1)))
    placed = [p for p in candidates if p and p != "/"]
    cells = (p for p in placed if "/procpilot-" in p and owner_of(p).program)
    return next(cells, placed[0] if placed else "/")


def owner_of(path: str) -> Owner:
    """The owner named by a cgroup path (see the module's rules)."""
    parts = [p for p in path.split("/") if p and p != ".."]
    unit = container = pod = program = ""
    for i in range(len(parts) - 1, -1, -1):
        part = parts[i]
        if not unit and _UNIT.fullmatch(part):
            unit = part
        if not container and (m := _CONTAINER.fullmatch(part)):
            container = m[1]
        if not pod and (m := _POD.fullmatch(part)):
            pod = m[1].replace("_", "-")
        if (not program and part.startswith("procpilot-") and part not in _NOT_CELL_ROOTS
                and i + 1 < len(parts) and (m := _CELL.fullmatch(parts[i + 1]))):
            program = m[1]
    return Owner(path, unit, container, pod, program)
