"""Which group a process belongs to: the first configured group whose selectors all match,
under the name its template makes.

Template fields: comm, exe_basename, exe_path, user, the owner fields (cgroup, unit,
container, program) and the named captures of the cmdline regex. A built-in field with no
value for the process (not in a container, exe unreadable) means the group does not match
it, so the next group is tried; a capture that matched nothing is just empty. Names are cut
to the label length cap.

Ended processes reported by taskstats are matched with what an exit record tells: comm and
uid. exe and cmdline are gone by then, so groups that select on them cannot match an exit,
and names can use only comm and user.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import NamedTuple

from procpilot.core.owner import Owner
from procpilot.core.procfs import Proc, Snapshot
from procpilot.exporter.collectors.caps import Caps
from procpilot.exporter.config import PLACEHOLDER, Group


class Hit(NamedTuple):
    group: Group
    name: str


def owner_field(owner: Owner, key: str) -> str:
    if key == "container":
        return owner.container or owner.pod
    value: str = getattr(owner, key)
    return value


class Matcher:
    def __init__(self, groups: list[Group], caps: Caps) -> None:
        self.groups = [(g, re.compile(g.cmdline) if g.cmdline else None) for g in groups]
        self.caps = caps
        # Only groups selecting on comm alone can match an exit record.
        self._by_comm_only = [g for g, regex in self.groups if g.comm and not g.exe and not regex]

    def match(self, p: Proc, snap: Snapshot) -> Hit | None:
        cmdline = None  # read once, for the first group that asks
        for group, cmdline_re in self.groups:
            if group.comm and p.comm not in group.comm:
                continue
            if group.exe:
                exe = snap.exe(p)
                if exe not in group.exe and os.path.basename(exe) not in group.exe:
                    continue
            captures: dict[str, str] = {}
            if cmdline_re is not None:
                if cmdline is None:
                    cmdline = " ".join(snap.cmdline(p))
                found = cmdline_re.search(cmdline)
                if found is None:
                    continue
                captures = {k: v or "" for k, v in found.groupdict().items()}
            name = self._name(group, captures, lambda key: _live_field(key, p, snap))
            if name is not None:
                return Hit(group, name)
        return None

    def match_exit(self, comm: str, user: Callable[[], str]) -> Hit | None:
        """The group of an ended process known only by comm and user."""
        def known(key: str) -> str:
            return comm if key == "comm" else user() if key == "user" else ""

        for group in self._by_comm_only:
            if comm in group.comm and (name := self._name(group, {}, known)) is not None:
                return Hit(group, name)
        return None

    def _name(self, group: Group, captures: dict[str, str],
              builtin: Callable[[str], str]) -> str | None:
        """The group's name for one process; None when a built-in field has no value."""
        if group.is_static:
            return group.name
        missing = False

        def fill(m: re.Match[str]) -> str:
            nonlocal missing
            key = m.group(1)
            if key in captures:
                return captures[key]
            value = builtin(key)
            missing = missing or not value
            return value

        name = PLACEHOLDER.sub(fill, group.name)
        return None if missing else self.caps.label(name)


def _live_field(key: str, p: Proc, snap: Snapshot) -> str:
    if key == "comm":
        return p.comm
    if key == "exe_basename":
        return os.path.basename(snap.exe(p))
    if key == "exe_path":
        return snap.exe(p)
    if key == "user":
        return snap.user(p)
    return owner_field(snap.owner(p), key)
