"""Every metric family the controller publishes, declared once (see core/metricdef.py)."""

from __future__ import annotations

from procpilot.controller.hooks import FAILURE_REASONS
from procpilot.controller.isolation import CHOICES
from procpilot.controller.states import RESTART_REASONS, State
from procpilot.core import reloads
from procpilot.core.metricdef import Family

STATES = tuple(s.value for s in State)
CPU_MODES = ("user", "system")
SCALE_DIRECTIONS = ("up", "down")
ISOLATION_BACKENDS = tuple(c for c in CHOICES if c != "auto")
HOOK_KINDS = ("command", "webhook")

PROGRAM_STATE = Family(
    "procpilot_program_state", "gauge", "One-hot program state (see the README's states).",
    ("program", "state"), {"state": STATES})
PROGRAM_INSTANCES = Family(
    "procpilot_program_instances", "gauge", "Instances running.", ("program",))
PROGRAM_READY = Family(
    "procpilot_program_ready_instances", "gauge",
    "Instances ready (serving): running and not announcing STOPPING=1, or, during a rolling "
    "restart, still served by the process being replaced.", ("program",))
PROGRAM_DESIRED = Family(
    "procpilot_program_desired_instances", "gauge",
    "Instances wanted (for pools: the autoscaler's or the pinned count).", ("program",))
PROGRAM_RESTARTS = Family(
    "procpilot_program_restarts_total", "counter",
    "Restarts by reason, every reason exported from 0.", ("program", "reason"),
    {"reason": RESTART_REASONS})
PROGRAM_EXIT_CODE = Family(
    "procpilot_program_exit_code", "gauge",
    "Last exit code of an instance; signal n as 128+n. Absent before the first exit.",
    ("program",))
PROGRAM_BACKOFF = Family(
    "procpilot_program_backoff_seconds", "gauge",
    "Longest current backoff wait among the instances, 0 when none.", ("program",))
PROGRAM_START_TIME = Family(
    "procpilot_program_start_time_seconds", "gauge",
    "Unix time the oldest running instance started.", ("program",))
PROGRAM_RESIDENT_MEMORY = Family(
    "procpilot_program_resident_memory_bytes", "gauge",
    "Resident memory of all instances' process trees.", ("program",))
INSTANCE_RESIDENT_MEMORY = Family(
    "procpilot_program_instance_resident_memory_bytes", "gauge",
    "Resident memory of each running instance's process tree, the number the per-instance "
    "limit is checked against (index: 0 to instances-1).", ("program", "index"))
PROGRAM_MEMORY_LIMIT = Family(
    "procpilot_program_memory_limit_bytes", "gauge",
    "Memory limit per instance; absent when unlimited.", ("program",))
PROGRAM_CPU_LIMIT = Family(
    "procpilot_program_cpu_limit_cores", "gauge",
    "CPU limit per instance in cores (cgroup cpu.max); absent when unlimited.", ("program",))
PROGRAM_CPU_THROTTLED = Family(
    "procpilot_program_cpu_throttled_seconds_total", "counter",
    "Time the instances' cgroups were held back by their CPU limit; absent without a cgroup "
    "CPU controller.", ("program",))
PROGRAM_CGROUP_MEMORY = Family(
    "procpilot_program_cgroup_memory_bytes", "gauge",
    "Memory the instances' cgroups are charged, the number their memory limit applies to. "
    "Unlike RSS it includes page cache; absent without a cgroup memory controller.",
    ("program",))
PROGRAM_TASKS = Family(
    "procpilot_program_tasks", "gauge",
    "Processes and threads of the running instances.", ("program",))
PROGRAM_TASKS_LIMIT = Family(
    "procpilot_program_tasks_limit", "gauge",
    "Most processes and threads per instance (cgroup pids.max); absent when unlimited.",
    ("program",))
PROGRAM_CPU = Family(
    "procpilot_program_cpu_seconds_total", "counter",
    "CPU time of all instances' process trees; monotonic across exits (up to the last "
    "sample).", ("program", "mode"), {"mode": CPU_MODES})

REAPED = Family(
    "procpilot_controller_reaped_processes_total", "counter",
    "Orphaned descendants the controller reaped (not managed instances).")
RELOADS = reloads.families("procpilot_controller", "SIGHUP or procpilotctl reload")
ISOLATION_INFO = Family(
    "procpilot_controller_isolation_info", "gauge",
    "Constant 1, labeled by the isolation backend the instances run under.", ("backend",),
    {"backend": ISOLATION_BACKENDS})
LEFTOVERS_KILLED = Family(
    "procpilot_controller_leftover_processes_killed_total", "counter",
    "Processes found at start-up in cgroups an earlier controller left (after a crash or "
    "SIGKILL), and killed.")
HOOK_RUNS = Family(
    "procpilot_controller_hook_runs_total", "counter",
    "Hooks run (commands and webhooks), failed ones included.", ("kind",),
    {"kind": HOOK_KINDS})
HOOK_FAILURES = Family(
    "procpilot_controller_hook_failures_total", "counter",
    "Hooks that failed (non-zero exit, non-2xx answer, no connection), timed out, or were "
    "dropped because too many were waiting; each is also a 'hook failed' log line.",
    ("kind", "reason"), {"kind": HOOK_KINDS, "reason": FAILURE_REASONS})
NOTIFICATIONS_REJECTED = Family(
    "procpilot_controller_notifications_rejected_total", "counter",
    "Datagrams on the notify socket from a process of no instance (or unreadable ones), "
    "dropped.")
BUILD_INFO = Family(
    "procpilot_controller_build_info", "gauge",
    "A metric with a constant '1' value labeled by version and Python version.",
    ("version", "python"))

POOL_WORKERS = Family("procpilot_pool_workers", "gauge", "Workers running.", ("program",))
POOL_DESIRED = Family(
    "procpilot_pool_desired_workers", "gauge",
    "Workers wanted by the last decision (the autoscaler's, or procpilotctl scale N while "
    "pinned).", ("program",))
POOL_MIN = Family("procpilot_pool_min_workers", "gauge", "Fewest workers (autoscale.min).",
                  ("program",))
POOL_MAX = Family("procpilot_pool_max_workers", "gauge", "Most workers (autoscale.max).",
                  ("program",))
POOL_UTILIZATION = Family(
    "procpilot_pool_cpu_utilization_ratio", "gauge",
    "Last measured CPU per worker over cpu_target (1 = on target); absent before the first "
    "measurement, held through intervals with no warmed-up worker.", ("program",))
POOL_CPU_TARGET = Family(
    "procpilot_pool_cpu_target_cores", "gauge",
    "CPU target per worker, in cores; absent without a CPU target.", ("program",))
POOL_METRIC_VALUE = Family(
    "procpilot_pool_metric_value", "gauge",
    "Last reading of each target the pool scales on: mean cores (cpu) or bytes (memory) per "
    "worker, host cores (cpu source system), or the total work (prometheus, http, command); "
    "absent while it cannot be read.", ("program", "metric"))
POOL_METRIC_TARGET = Family(
    "procpilot_pool_metric_target", "gauge",
    "What each worker should carry of each target (the config's target).",
    ("program", "metric"))
POOL_METRIC_ERRORS = Family(
    "procpilot_pool_metric_errors_total", "counter",
    "Readings of each target that failed (an error, a timeout, not a finite number); while "
    "one fails the pool does not shrink.", ("program", "metric"))
POOL_SCALE_EVENTS = Family(
    "procpilot_pool_scale_events_total", "counter",
    "Times the autoscaler changed the count, by direction, both from 0. Each is also one "
    "'scaling pool' log line; pinning with procpilotctl scale N is not counted.",
    ("program", "direction"), {"direction": SCALE_DIRECTIONS})
POOL_LAST_SCALE = Family(
    "procpilot_pool_last_scale_time_seconds", "gauge",
    "Unix time of the last scale event; absent before the first.", ("program",))
POOL_AT_MAX = Family(
    "procpilot_pool_at_max", "gauge",
    "1 while the autoscaler's raw recommendation exceeds max (the pool is saturated); 0 "
    "otherwise and while pinned.", ("program",))

CONTROLLER = (
    PROGRAM_STATE, PROGRAM_INSTANCES, PROGRAM_READY, PROGRAM_DESIRED, PROGRAM_RESTARTS,
    PROGRAM_EXIT_CODE, PROGRAM_BACKOFF, PROGRAM_START_TIME, PROGRAM_RESIDENT_MEMORY,
    INSTANCE_RESIDENT_MEMORY, PROGRAM_MEMORY_LIMIT, PROGRAM_CGROUP_MEMORY, PROGRAM_CPU,
    PROGRAM_CPU_LIMIT, PROGRAM_CPU_THROTTLED, PROGRAM_TASKS, PROGRAM_TASKS_LIMIT, REAPED,
    *RELOADS, ISOLATION_INFO, LEFTOVERS_KILLED, HOOK_RUNS,
    HOOK_FAILURES, NOTIFICATIONS_REJECTED, BUILD_INFO,
)
POOL = (
    POOL_WORKERS, POOL_DESIRED, POOL_MIN, POOL_MAX, POOL_UTILIZATION, POOL_CPU_TARGET,
    POOL_SCALE_EVENTS, POOL_LAST_SCALE, POOL_AT_MAX, POOL_METRIC_VALUE, POOL_METRIC_TARGET,
    POOL_METRIC_ERRORS,
)
ALL = CONTROLLER + POOL
