"""Every metric family the exporter publishes, declared once (see core/metricdef.py)."""

from __future__ import annotations

from procpilot.core import reloads
from procpilot.core.metricdef import Family
from procpilot.core.procfs import READ_ERROR_REASONS

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
COLLECTOR_NAMES = ("summary", "threads", "zombies", "orphans", "groups", "top")
DROP_REASONS = ("max_series", "max_groups", "max_scrape_series")
CPU_MODES = ("user", "system")
SWITCH_TYPES = ("voluntary", "involuntary")
EXIT_RESULTS = ("grouped", "ungrouped", "unattributed")
EXIT_LOSSES = ("socket", "capacity")

PROCESSES = Family(
    "procpilot_processes", "gauge", "Processes on the host by state.",
    ("state",), {"state": STATES})
THREADS = Family("procpilot_threads", "gauge", "Threads on the host.")
RESIDENT_MEMORY = Family(
    "procpilot_processes_resident_memory_bytes", "gauge",
    "Resident memory summed over all processes (shared pages count once per process).")
PIDS_LIMIT = Family(
    "procpilot_pids_limit", "gauge",
    "Process ids wrap around below this (kernel.pid_max): the most processes and threads "
    "the host can have.")
THREADS_LIMIT = Family(
    "procpilot_threads_limit", "gauge",
    "Most threads the kernel will create, all processes together (kernel.threads-max).")
THREAD_STATES = Family(
    "procpilot_thread_states", "gauge",
    "Threads on the host by state (reads each thread of multi-threaded processes).",
    ("state",), {"state": STATES})

TOP_MEMORY = Family(
    "procpilot_top_process_resident_memory_bytes", "gauge",
    "Resident memory of the N largest processes (no rank label: a reshuffle makes no new "
    "series). owner only with top_owner: true.", ("pid", "name", "owner"))
TOP_CPU = Family(
    "procpilot_top_process_cpu_usage_ratio", "gauge",
    "CPU of the N busiest processes since the previous scrape, in cores. A process first "
    "seen at this scrape is averaged since it started. owner only with top_owner: true.",
    ("pid", "name", "owner"))

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
GROUP_VIRTUAL_MEMORY = Family(
    "procpilot_group_virtual_memory_bytes", "gauge",
    "Virtual memory (address space) summed over each group.", ("group",))
GROUP_SWAP = Family(
    "procpilot_group_swap_bytes", "gauge",
    "Swapped-out memory summed over each group (groups with swap: true).", ("group",))
GROUP_PSS = Family(
    "procpilot_group_proportional_resident_memory_bytes", "gauge",
    "Proportional set size (PSS: each shared page divided among its users) summed over "
    "each group with pss: true; costly to read.", ("group",))
GROUP_SWAP_PSS = Family(
    "procpilot_group_proportional_swap_bytes", "gauge",
    "Swapped-out memory shared the same way (SwapPss) summed over each group with "
    "pss: true.", ("group",))
GROUP_CPU = Family(
    "procpilot_group_cpu_seconds_total", "counter",
    "CPU used by each group's members; keeps what exited members used (up to their last "
    "scrape, or all of it where taskstats reports exits).", ("group", "mode"),
    {"mode": CPU_MODES})
GROUP_READ = Family(
    "procpilot_group_read_bytes_total", "counter",
    "Bytes each group's members made the storage layer read (page cache hits excluded; "
    "groups with io: true). Reading other users' processes needs root or CAP_SYS_PTRACE; "
    "denied reads are counted in procpilot_exporter_procfs_read_errors_total.", ("group",))
GROUP_WRITE = Family(
    "procpilot_group_write_bytes_total", "counter",
    "Bytes each group's members sent towards storage (groups with io: true; needs the "
    "same privileges as reading).", ("group",))
GROUP_MAJOR_FAULTS = Family(
    "procpilot_group_major_page_faults_total", "counter",
    "Page faults of each group's members that had to read from disk.", ("group",))
GROUP_MINOR_FAULTS = Family(
    "procpilot_group_minor_page_faults_total", "counter",
    "Page faults of each group's members served without disk I/O.", ("group",))
GROUP_CONTEXT_SWITCHES = Family(
    "procpilot_group_context_switches_total", "counter",
    "Context switches of each member's main thread (as /proc/<pid>/status counts them), "
    "groups with context_switches: true. voluntary: it waited; involuntary: preempted.",
    ("group", "type"), {"type": SWITCH_TYPES})
GROUP_OPEN_FDS = Family(
    "procpilot_group_open_fds", "gauge",
    "Open file descriptors summed over each group (groups with fds: true).", ("group",))
GROUP_WORST_FD_RATIO = Family(
    "procpilot_group_worst_fd_ratio", "gauge",
    "Highest ratio of open file descriptors to the soft open files limit (RLIMIT_NOFILE) "
    "among each group's members; at 1, opening files fails with EMFILE.", ("group",))
GROUP_STATES = Family(
    "procpilot_group_process_states", "gauge", "Processes in each group by state.",
    ("group", "state"), {"state": STATES})
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
LABELS_TRUNCATED = Family(
    "procpilot_exporter_label_values_truncated_total", "counter",
    "Label values cut to max_label_length (group names made by templates, owners).")
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
    ("reason",), {"reason": READ_ERROR_REASONS})
RELOADS = reloads.families("procpilot_exporter", "SIGHUP")
TASKSTATS_LISTENING = Family(
    "procpilot_exporter_taskstats_listening", "gauge",
    "1 while the exporter receives the kernel's taskstats exit records (root, Linux 5.19+, "
    "some group configured), which credit the CPU, faults and I/O of processes that ended "
    "between scrapes; 0 when unavailable (the log says why).")
TASKSTATS_EXITS = Family(
    "procpilot_exporter_taskstats_exits_total", "counter",
    "Ended processes reported by taskstats, by what became of them. unattributed: could "
    "not be told apart from a process a forgotten scrape saw, so not credited.",
    ("result",), {"result": EXIT_RESULTS})
TASKSTATS_LOST = Family(
    "procpilot_exporter_taskstats_lost_total", "counter",
    "Exit records lost before they were matched. socket: thread records the kernel "
    "dropped (the listener fell behind); capacity: processes beyond the listener's bounded "
    "buffers.", ("reason",), {"reason": EXIT_LOSSES})
BUILD_INFO = Family(
    "procpilot_exporter_build_info", "gauge",
    "A metric with a constant '1' value labeled by version and Python version.",
    ("version", "python"))

ALL = (
    PROCESSES, THREADS, RESIDENT_MEMORY, PIDS_LIMIT, THREADS_LIMIT, THREAD_STATES, TOP_MEMORY,
    TOP_CPU, ZOMBIES, ZOMBIE_OLDEST, ORPHANS,
    GROUP_PROCESSES, GROUP_RESIDENT_MEMORY, GROUP_VIRTUAL_MEMORY, GROUP_SWAP, GROUP_PSS,
    GROUP_SWAP_PSS, GROUP_CPU, GROUP_READ, GROUP_WRITE, GROUP_MAJOR_FAULTS, GROUP_MINOR_FAULTS,
    GROUP_CONTEXT_SWITCHES, GROUP_OPEN_FDS, GROUP_WORST_FD_RATIO, GROUP_STATES, GROUP_THREADS,
    GROUP_OLDEST, PROCESS_RESIDENT_MEMORY, SERIES_DROPPED, LABELS_TRUNCATED,
    COLLECTOR_DURATION, COLLECTOR_SUCCESS, SNAPSHOT_DURATION, READ_ERRORS, *RELOADS,
    TASKSTATS_LISTENING, TASKSTATS_EXITS, TASKSTATS_LOST,
    BUILD_INFO,
)
