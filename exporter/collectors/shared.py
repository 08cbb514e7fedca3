"""What the collectors share and keep for the exporter's lifetime (across reloads)."""

from __future__ import annotations

from dataclasses import dataclass, field

from procpilot.exporter.collectors.caps import Caps
from procpilot.exporter.collectors.exits import ExitCounts
from procpilot.exporter.config import ExporterConfig
from procpilot.exporter.exits import ExitSource


@dataclass
class Shared:
    caps: Caps = field(default_factory=Caps)
    exits: ExitSource | None = None  # ended processes from taskstats, when enabled
    exit_counts: ExitCounts = field(default_factory=ExitCounts)  # what became of them


class Stateless:
    """Base of the collectors that keep nothing between scrapes and read no config."""

    def __init__(self, shared: Shared) -> None:
        pass

    def configure(self, config: ExporterConfig) -> None:
        pass
