"""How one instance process is confined: the cell (cgroup) it runs in with the limits the
kernel keeps there, and the limits set on the process itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from procpilot.controller.isolation import Limits


@dataclass(frozen=True)
class Confinement:
    """Where one instance process runs and what bounds it: a cell of its own (a cgroup,
    with the isolation backend) with the kernel's limits, and the limits set on the process."""

    name: str  # <program>-<index>; each process gets the cell <name>-<n>
    limits: Limits = field(default_factory=Limits)
    nofile: int | None = None
    core: int | Literal["unlimited"] | None = None
    umask: int | None = None

    def argv(self) -> list[str]:
        """A prefix setting the rlimits and umask, then exec'ing the rest; empty if none."""
        steps = []
        if self.nofile is not None:
            steps.append(f"ulimit -n {self.nofile}")
        if self.core is not None:  # dash counts core sizes in 512-byte blocks
            blocks = "unlimited" if self.core == "unlimited" else -(-self.core // 512)
            steps.append(f"ulimit -c {blocks}")
        if self.umask is not None:
            steps.append(f"umask {self.umask:03o}")
        if not steps:
            return []
        return ["/bin/sh", "-c", " && ".join([*steps, 'exec "$@"']), "procpilot-limits"]
