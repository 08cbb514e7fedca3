"""Every metric family the exporter publishes, declared once (see core/metricdef.py)."""

from __future__ import annotations

from procpilot.core.metricdef import Family
from procpilot.core.procfs import ReadErrors

# proc(5) state letters; 'x' is the older spelling of dead. Anything else (W, P, K, ...) is "other".
STATE_NAMES = {
    "R": "running",
    "S": "sleeping",
    "D": "disk_sleep",
    "T": "stopped",
    "t": "tracing_stop",
    "Z": "zombie",
    "X": "dead",
    "x": "dead",
    "I": "idle",
}
STATES = ("running", "sleeping", "disk_sleep", "stopped", "tracing_stop", "zombie", "dead",
          "idle", "other")
COLLECTOR_NAMES = ("summary", "zombies", "orphans", "groups", "top")
DROP_REASONS = ("max_series", "max_groups")
CPU_MODES = ("user", "system")

PROCESSES = Family(
    "procpilot_processes", "gauge", "Processes on the host by state.",
    ("state",), {"state": STATES})
THREADS = Family("procpilot_threads", "gauge", "Threads on the host.")
RESIDENT_MEMORY = Family(
    "procpilot_processes_resident_memory_bytes", "gauge",
    "Resident memory summed over all processes (shared pages count once per process).")

TOP_MEMORY = Family(
    "procpilot_top_process_resident_memory_bytes", "gauge",
    "Resident memory of the N largest processes (no rank label: a reshuffle makes no new "
    "series).", ("pid", "name"))
TOP_CPU = Family(
    "procpilot_top_process_cpu_usage_ratio", "gauge",
    "CPU of the N busiest processes since the previous scrape, in cores. A process first "
    "seen at this scrape is averaged since it started.", ("pid", "name"))

ZOMBIES = Family(
    "procpilot_zombie_processes", "gauge",
    "Zombie processes by the name of the parent that has not reaped them.", ("parent",))
ZOMBIE_OLDEST = Family(
    "procpilot_zombie_oldest_start_time_seconds", "gauge",
    "Unix time the oldest zombie of each parent started.", ("parent",))
ORPHANS = Family(
    "procpilot_orphan_processes", "gauge",
    "Processes whose session leader is gone and that were re-parented (see the README's "
    "orphan rule).", ("name", "user"))

GROUP_PROCESSES = Family(
    "procpilot_group_processes", "gauge", "Processes in each configured group.", ("group",))
GROUP_RESIDENT_MEMORY = Family(
    "procpilot_group_resident_memory_bytes", "gauge",
    "Resident memory summed over each group.", ("group",))
GROUP_CPU = Family(
    "procpilot_group_cpu_seconds_total", "counter",
    "CPU used by each group's members; keeps what exited members used (up to their last "
    "scrape).", ("group", "mode"), {"mode": CPU_MODES})
GROUP_THREADS = Family(
    "procpilot_group_threads", "gauge", "Threads in each group.", ("group",))
GROUP_OLDEST = Family(
    "procpilot_group_oldest_start_time_seconds", "gauge",
    "Unix time the oldest member of each group started (absent while the group is empty).",
    ("group",))
PROCESS_RESIDENT_MEMORY = Family(
    "procpilot_process_resident_memory_bytes", "gauge",
    "Resident memory of each process of groups with per_process: true, capped by "
    "max_series.", ("group", "pid"))

SERIES_DROPPED = Family(
    "procpilot_exporter_series_dropped_total", "counter",
    "Series left out at each scrape because a configured cap was reached.",
    ("reason",), {"reason": DROP_REASONS})
COLLECTOR_DURATION = Family(
    "procpilot_exporter_collector_duration_seconds", "gauge",
    "Time each collector took in this scrape.", ("collector",),
    {"collector": COLLECTOR_NAMES})
COLLECTOR_SUCCESS = Family(
    "procpilot_exporter_collector_success", "gauge",
    "1 if the collector succeeded in this scrape.", ("collector",),
    {"collector": COLLECTOR_NAMES})
SNAPSHOT_DURATION = Family(
    "procpilot_exporter_snapshot_duration_seconds", "gauge",
    "Time taken to read /proc/<pid>/stat of every process in this scrape.")
READ_ERRORS = Family(
    "procpilot_exporter_procfs_read_errors_total", "counter",
    "Processes skipped while reading procfs: vanished, permission denied, unparsable.",
    ("reason",), {"reason": ReadErrors._fields})
BUILD_INFO = Family(
    "procpilot_exporter_build_info", "gauge",
    "A metric with a constant '1' value labeled by version and Python version.",
    ("version", "python"))

ALL = (
    PROCESSES, THREADS, RESIDENT_MEMORY, TOP_MEMORY, TOP_CPU, ZOMBIES, ZOMBIE_OLDEST, ORPHANS,
    GROUP_PROCESSES, GROUP_RESIDENT_MEMORY, GROUP_CPU, GROUP_THREADS, GROUP_OLDEST,
    PROCESS_RESIDENT_MEMORY, SERIES_DROPPED, COLLECTOR_DURATION, COLLECTOR_SUCCESS,
    SNAPSHOT_DURATION, READ_ERRORS, BUILD_INFO,
)
