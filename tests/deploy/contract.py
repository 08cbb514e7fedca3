"""The metrics contract the operations files may use, read from the family declarations:
metric names, their labels, and the closed sets of label values.

PROMISED lists the controller and pool metrics the dashboards, alerts and users were
promised by name, so a test can check that every one is still declared.
"""

from __future__ import annotations

from procpilot.controller import families as controller
from procpilot.core.metricdef import Family
from procpilot.exporter import families as exporter

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})
JOBS = frozenset({"procpilot-exporter", "procpilot-controller"})

PROMISED: dict[str, frozenset[str]] = {
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

DECLARED: tuple[Family, ...] = exporter.ALL + controller.ALL
# Not declared here: Prometheus's own per-target series, and the standard process metrics
# prometheus_client's ProcessCollector adds to the exporter (about the exporter itself).
PROCESS_METRICS = ("process_cpu_seconds_total", "process_resident_memory_bytes",
                   "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                   "process_start_time_seconds")
METRICS: dict[str, frozenset[str]] = {f.name: frozenset(f.labels) for f in DECLARED} | {
    "up": frozenset()} | dict.fromkeys(PROCESS_METRICS, frozenset())
# Label values the services export; a selector using another value would never match.
LABEL_VALUES: dict[tuple[str, str], frozenset[str]] = {
    (f.name, label): frozenset(values) for f in DECLARED for label, values in f.values.items()
} | {("up", "job"): JOBS}
