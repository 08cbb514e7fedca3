"""Which instance a notification is handed to, in the real runtime's routing table.

A pid can come back for a newer instance before the older one's exit callback runs (pids
wrap: pid_max is 32768 on many hosts); the older instance's cleanup must not unhook the
newer one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from procpilot.controller.isolation.none import NoneBackend, NoneCell
from procpilot.controller.notify import Notice
from procpilot.controller.runtime import ProcessRuntime
from procpilot.controller.states import ExitStatus
from procpilot.core.procfs import FS

if TYPE_CHECKING:
    from procpilot.controller.runtime import ProcessChild

PID = 4_000_000  # above any pid_max: no real process is found for it


@dataclass
class Started:
    """What the routing table needs of a started child."""

    pid: int
    cell: NoneCell
    exited: asyncio.Future[ExitStatus] = field(default_factory=asyncio.Future)


def test_an_old_instances_exit_does_not_unhook_a_newer_one_with_its_pid() -> None:
    async def test() -> None:
        rt = ProcessRuntime(asyncio.get_running_loop(), FS.at(), NoneBackend())
        heard: dict[str, list[Notice]] = {"old": [], "new": []}
        old, new = Started(PID, NoneCell("web-0-1")), Started(PID, NoneCell("web-0-2"))
        rt._listen_to(cast("ProcessChild", old), heard["old"].append)
        rt._listen_to(cast("ProcessChild", new), heard["new"].append)  # the pid came back
        old.exited.set_result(ExitStatus(0, None))
        await asyncio.sleep(0)  # the exit callbacks run
        assert rt._notice(PID, Notice(ready=True))
        assert heard == {"old": [], "new": [Notice(ready=True)]}
        new.exited.set_result(ExitStatus(0, None))
        await asyncio.sleep(0)
        assert not rt._notice(PID, Notice(ready=True))

    asyncio.run(test())


