"""The metrics contract the operations files may use: metric names, their labels, and the
label values the contract enumerates. The one place tests/deploy reads it from.

Names and labels come from the README's metric reference tables (rows of the form
| `procpilot_...` | type | labels | meaning |). ISSUE_CONTRACT lists the controller and pool
metrics as the issue texts name them, so a test can check the README documents every one.
"""

from __future__ import annotations

import re
from pathlib import Path

from procpilot.controller.metrics import RESTART_REASONS
from procpilot.controller.states import State
from procpilot.exporter.collectors import summary

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\|\s*`(?P<name>procpilot_\w+)`\s*\|[^|]*\|(?P<labels>[^|]*)\|", re.MULTILINE)

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})

ISSUE_CONTRACT: dict[str, frozenset[str]] = {
    name: frozenset(labels)
    for name, labels in {
        # Controller
        "procpilot_program_state": {"program", "state"},
        "procpilot_program_instances": {"program"},
        "procpilot_program_desired_instances": {"program"},
        "procpilot_program_restarts_total": {"program", "reason"},
        "procpilot_program_exit_code": {"program"},
        "procpilot_program_backoff_seconds": {"program"},
        "procpilot_program_start_time_seconds": {"program"},
        "procpilot_program_resident_memory_bytes": {"program"},
        "procpilot_program_memory_limit_bytes": {"program"},
        "procpilot_program_cpu_seconds_total": {"program", "mode"},
        "procpilot_controller_reaped_processes_total": set(),
        "procpilot_controller_config_reloads_total": {"result"},
        "procpilot_controller_build_info": {"version", "python"},
        # Pools (autoscaled programs)
        "procpilot_pool_workers": {"program"},
        "procpilot_pool_desired_workers": {"program"},
        "procpilot_pool_min_workers": {"program"},
        "procpilot_pool_max_workers": {"program"},
        "procpilot_pool_cpu_utilization_ratio": {"program"},
        "procpilot_pool_cpu_target_cores": {"program"},
        "procpilot_pool_scale_events_total": {"program", "direction"},
        "procpilot_pool_last_scale_time_seconds": {"program"},
        "procpilot_pool_at_max": {"program"},
    }.items()
}


def readme_metrics(text: str) -> dict[str, frozenset[str]]:
    """Metric -> labels from the README tables; notes in parentheses are not labels."""
    out = {}
    for m in ROW.finditer(text):
        cell = re.sub(r"\([^)]*\)", "", m["labels"])
        out[m["name"]] = frozenset(part.split()[0] for part in cell.split(",") if part.strip())
    return out


DOCUMENTED = readme_metrics(README.read_text())
# Prometheus's own per-target series is the one name not in the tables.
METRICS: dict[str, frozenset[str]] = DOCUMENTED | {"up": frozenset()}

# Label values the services export (read from the code that exports them); a selector
# using another value would never match.
LABEL_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("procpilot_processes", "state"): frozenset(summary.STATES),
    ("procpilot_program_state", "state"): frozenset(s.value for s in State),
    ("procpilot_program_restarts_total", "reason"): frozenset(RESTART_REASONS),
    ("procpilot_controller_config_reloads_total", "result"): frozenset({"success", "failure"}),
    ("procpilot_group_cpu_seconds_total", "mode"): frozenset({"user", "system"}),
    ("up", "job"): frozenset({"procpilot-exporter", "procpilot-controller"}),
}
