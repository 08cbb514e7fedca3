"""Build the two Grafana dashboards: python grafana/build.py writes the JSON files beside it.

The JSON is generated so that every panel shares one layout, one datasource variable and
one set of defaults; edit the panels here, not in the JSON, then run ./dev generate
(tests/deploy fails while the JSON files are out of date, and checks every query against
the declared metric families). A panel that shows one family describes it with its help.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from procpilot.controller.families import POOL_AT_MAX, POOL_METRIC_ERRORS, POOL_METRIC_VALUE

Panel = dict[str, Any]
Query = tuple[str, str]  # (PromQL, legend format)

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24
# Dashboard-wide selectors; the variables are defined in _variables().
INSTANCE = 'instance=~"$instance"'
GROUP = 'instance=~"$instance", group=~"$group"'
EXPORTER = 'job="procpilot-exporter", instance=~"$instance"'
PROGRAM = 'instance=~"$instance", program=~"$program"'


def _targets(queries: tuple[Query, ...], **extra: Any) -> list[dict[str, Any]]:
    return [
        {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
        | extra
        for i, (expr, legend) in enumerate(queries)
    ]


def timeseries(
    title: str,
    unit: str,
    *queries: Query,
    description: str = "",
    width: int = 8,
    stack: bool = False,
    bars: bool = False,
    max_value: float | None = None,
    overrides: list[dict[str, Any]] | None = None,
) -> Panel:
    defaults: dict[str, Any] = {
        "unit": unit,
        "min": 0,
        "custom": {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 60 if bars else 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack or bars else "none", "group": "A"},
        },
    }
    if max_value is not None:
        defaults["max"] = max_value
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": width, "h": 8},
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": _targets(queries),
    }


def stat(title: str, unit: str, expr: str, description: str = "") -> Panel:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": 6, "h": 4},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        },
        "targets": _targets(((expr, ""),)),
    }


def table(title: str, expr: str, columns: list[str], description: str = "") -> Panel:
    """An instant table showing only the given label columns, in that order."""
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"w": 8, "h": 8},
        "fieldConfig": {"defaults": {"unit": "none"}, "overrides": []},
        "options": {"showHeader": True},
        "targets": _targets(((expr, ""),), format="table", instant=True),
        "transformations": [
            {"id": "filterFieldsByName", "options": {"include": {"names": columns}}},
            {
                "id": "organize",
                "options": {"indexByName": {name: i for i, name in enumerate(columns)}},
            },
        ],
    }


def dashed(pattern: str) -> dict[str, Any]:
    """Override drawing the series whose display name matches the regex as dashed lines."""
    return {
        "matcher": {"id": "byRegexp", "options": pattern},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def against_limit(title: str, unit: str, used: Query, limit_metric: str,
                  description: str) -> Panel:
    """A program's usage with its configured limit as a dashed line."""
    limit = (f"{limit_metric}{{{PROGRAM}}}", "{{program}} limit")
    return timeseries(title, unit, used, limit, description=description,
                      overrides=[dashed(".* limit$")])


def layout(rows: list[tuple[str, list[Panel]]]) -> list[Panel]:
    """Give every panel an id and a grid position: rows stacked, panels left to right."""
    out: list[Panel] = []
    y = 0
    for title, panels in rows:
        out.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = line_height = 0
        for panel in panels:
            w, h = panel["gridPos"]["w"], panel["gridPos"]["h"]
            if x + w > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            x += w
            line_height = max(line_height, h)
            out.append(panel)
        y += line_height
    for panel_id, panel in enumerate(out, start=1):
        panel["id"] = panel_id
    return out


def query_variable(name: str, label: str, metric_selector: str) -> dict[str, Any]:
    query = f"label_values({metric_selector}, {name})"
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "current": {},
        "options": [],
        "sort": 1,
        "hide": 0,
        "regex": "",
    }


def dashboard(
    uid: str, title: str, description: str, variables: list[dict[str, Any]], panels: list[Panel]
) -> dict[str, Any]:
    datasource_variable = {
        "type": "datasource",
        "name": "datasource",
        "label": "Data source",
        "query": "prometheus",
        "current": {},
        "options": [],
        "refresh": 1,
        "hide": 0,
        "regex": "",
    }
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["procpilot"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "links": [],
        "annotations": {"list": []},
        "templating": {"list": [datasource_variable, *variables]},
        "panels": panels,
    }


def exporter_dashboard() -> dict[str, Any]:
    rate = "[$__rate_interval]"
    summary = [
        stat("Processes", "short", f"sum(procpilot_processes{{{INSTANCE}}})"),
        stat("Zombies", "short", f"sum(procpilot_zombie_processes{{{INSTANCE}}}) or vector(0)"),
        stat("Orphans", "short", f"sum(procpilot_orphan_processes{{{INSTANCE}}}) or vector(0)"),
        stat(
            "Resident memory",
            "bytes",
            f"sum(procpilot_processes_resident_memory_bytes{{{INSTANCE}}})",
            "RSS summed over every process; shared pages are counted once per process.",
        ),
        timeseries(
            "Processes by state",
            "short",
            (f"sum by (state) (procpilot_processes{{{INSTANCE}}})", "{{state}}"),
            stack=True,
        ),
        timeseries("Threads", "short", (f"procpilot_threads{{{INSTANCE}}}", "{{instance}}")),
        timeseries(
            "Resident memory",
            "bytes",
            (f"procpilot_processes_resident_memory_bytes{{{INSTANCE}}}", "{{instance}}"),
        ),
    ]
    zombies = [
        timeseries(
            "Zombies by parent",
            "short",
            (f"procpilot_zombie_processes{{{INSTANCE}}}", "{{parent}} @ {{instance}}"),
            description="Zombies are reaped by their parent; a parent whose count only grows "
            "is not calling wait().",
        ),
        timeseries(
            "Oldest zombie, time since its process started",
            "s",
            (
                f"time() - procpilot_zombie_oldest_start_time_seconds{{{INSTANCE}}}",
                "{{parent}} @ {{instance}}",
            ),
            description="The process start time, not the time it died: an upper bound on "
            "how long the zombie has waited.",
        ),
        timeseries(
            "Orphans by name and user",
            "short",
            (f"procpilot_orphan_processes{{{INSTANCE}}}", "{{name}} ({{user}}) @ {{instance}}"),
            description="Processes whose session leader is gone and that were re-parented: "
            "usually left behind by a service that died or was stopped carelessly.",
        ),
    ]
    groups = [
        timeseries(
            "Processes per group",
            "short",
            (f"procpilot_group_processes{{{GROUP}}}", "{{group}} @ {{instance}}"),
        ),
        timeseries(
            "Resident memory per group",
            "bytes",
            (f"procpilot_group_resident_memory_bytes{{{GROUP}}}", "{{group}} @ {{instance}}"),
        ),
        timeseries(
            "CPU per group",
            "percentunit",
            (
                "sum by (instance, group) "
                f"(rate(procpilot_group_cpu_seconds_total{{{GROUP}}}{rate}))",
                "{{group}} @ {{instance}}",
            ),
            description="100% is one core.",
        ),
        timeseries(
            "System CPU share per group",
            "percentunit",
            (
                "sum by (instance, group) (rate(procpilot_group_cpu_seconds_total"
                f'{{{GROUP}, mode="system"}}{rate}))'
                " / sum by (instance, group) (rate(procpilot_group_cpu_seconds_total"
                f"{{{GROUP}}}{rate}))",
                "{{group}} @ {{instance}}",
            ),
            description="Time in the kernel out of all CPU time: high values point at "
            "syscall-heavy work (I/O, polling).",
            max_value=1,
        ),
        timeseries(
            "Threads per group",
            "short",
            (f"procpilot_group_threads{{{GROUP}}}", "{{group}} @ {{instance}}"),
        ),
        timeseries(
            "Oldest process uptime per group",
            "s",
            (
                f"time() - procpilot_group_oldest_start_time_seconds{{{GROUP}}}",
                "{{group}} @ {{instance}}",
            ),
            description="Drops to zero when every member of the group was restarted.",
        ),
        timeseries(
            "Resident memory per process (opt-in groups)",
            "bytes",
            (
                f"procpilot_process_resident_memory_bytes{{{GROUP}}}",
                "{{group}} {{pid}} @ {{instance}}",
            ),
            description="Only groups with per_process: true, capped by max_series.",
            width=24,
        ),
    ]
    group_depth = [
        timeseries(
            "Memory of the selected groups by kind",
            "bytes",
            (f"sum(procpilot_group_resident_memory_bytes{{{GROUP}}})", "resident"),
            (f"sum(procpilot_group_virtual_memory_bytes{{{GROUP}}})", "virtual"),
            (f"sum(procpilot_group_swap_bytes{{{GROUP}}})", "swap"),
            (f"sum(procpilot_group_proportional_resident_memory_bytes{{{GROUP}}})", "PSS"),
            (f"sum(procpilot_group_proportional_swap_bytes{{{GROUP}}})", "swap PSS"),
            description="Resident counts shared pages in every process that maps them; PSS "
            "divides them among their users (groups with pss: true only). Virtual is "
            "address space, mostly never touched.",
            overrides=[dashed("^virtual$")],
        ),
        timeseries(
            "Swap per group",
            "bytes",
            (f"procpilot_group_swap_bytes{{{GROUP}}}", "{{group}} @ {{instance}}"),
        ),
        timeseries(
            "Storage I/O per group",
            "Bps",
            (
                "sum by (instance, group) "
                f"(rate(procpilot_group_read_bytes_total{{{GROUP}}}{rate}))",
                "{{group}} read @ {{instance}}",
            ),
            (
                "sum by (instance, group) "
                f"(rate(procpilot_group_write_bytes_total{{{GROUP}}}{rate}))",
                "{{group}} write @ {{instance}}",
            ),
            description="Bytes that reached the block layer; reads served from the page "
            "cache are not in it. Needs the exporter to run as root (or CAP_SYS_PTRACE).",
            overrides=[dashed(" write @ ")],
        ),
        timeseries(
            "Major page faults per group",
            "ops",
            (
                "sum by (instance, group) "
                f"(rate(procpilot_group_major_page_faults_total{{{GROUP}}}{rate}))",
                "{{group}} @ {{instance}}",
            ),
            description="Faults that had to read from disk: memory pressure or memory-mapped "
            "files being paged in. Minor faults are the normal cost of touching memory.",
        ),
        timeseries(
            "Context switches per group",
            "ops",
            (
                "sum by (instance, group, type) "
                f"(rate(procpilot_group_context_switches_total{{{GROUP}}}{rate}))",
                "{{group}} {{type}} @ {{instance}}",
            ),
            description="Of each member's main thread. Involuntary ones growing with load "
            "mean the group competes for CPU.",
            overrides=[dashed(" involuntary @ ")],
        ),
        timeseries(
            "Processes per group by state",
            "short",
            (
                f"sum by (state) (procpilot_group_process_states{{{GROUP}}})",
                "{{state}}",
            ),
            stack=True,
        ),
        timeseries(
            "Open files per group",
            "short",
            (f"procpilot_group_open_fds{{{GROUP}}}", "{{group}} @ {{instance}}"),
        ),
        timeseries(
            "Worst open files ratio per group",
            "percentunit",
            (f"procpilot_group_worst_fd_ratio{{{GROUP}}}", "{{group}} @ {{instance}}"),
            description="The member closest to its open files limit (RLIMIT_NOFILE); at 100% "
            "opening files fails with EMFILE. The ProcpilotGroupNearFdLimit alert fires "
            "above 90%.",
            max_value=1,
        ),
    ]
    top = [
        timeseries(
            "Top processes by resident memory",
            "bytes",
            (
                f"procpilot_top_process_resident_memory_bytes{{{INSTANCE}}}",
                "{{name}} ({{pid}}) @ {{instance}}",
            ),
            width=12,
        ),
        timeseries(
            "Top processes by CPU",
            "percentunit",
            (
                f"procpilot_top_process_cpu_usage_ratio{{{INSTANCE}}}",
                "{{name}} ({{pid}}) @ {{instance}}",
            ),
            description="CPU used between two scrapes; 100% is one core.",
            width=12,
        ),
    ]
    owners = [
        timeseries(
            "Resident memory of the top processes by owner",
            "bytes",
            (
                "sum by (instance, owner) "
                f'(procpilot_top_process_resident_memory_bytes{{{INSTANCE}, owner!=""}})',
                "{{owner}} @ {{instance}}",
            ),
            description="Needs top_owner: true in the exporter config. The owner is the "
            "program, container, pod or systemd unit the process's cgroup names; only the "
            "top processes are included.",
            width=12,
        ),
        timeseries(
            "CPU of the top processes by owner",
            "percentunit",
            (
                "sum by (instance, owner) "
                f'(procpilot_top_process_cpu_usage_ratio{{{INSTANCE}, owner!=""}})',
                "{{owner}} @ {{instance}}",
            ),
            description="Needs top_owner: true; 100% is one core.",
            width=12,
        ),
    ]
    host = [
        timeseries(
            "Threads by state",
            "short",
            (f"sum by (state) (procpilot_thread_states{{{INSTANCE}}})", "{{state}}"),
            stack=True,
        ),
        timeseries(
            "Process ids in use",
            "percentunit",
            (
                f"procpilot_threads{{{INSTANCE}}} / procpilot_pids_limit{{{INSTANCE}}}",
                "of pid_max @ {{instance}}",
            ),
            (
                f"procpilot_threads{{{INSTANCE}}} / procpilot_threads_limit{{{INSTANCE}}}",
                "of threads-max @ {{instance}}",
            ),
            description="Every thread holds a process id; at 100% of pid_max fork fails.",
            max_value=1,
        ),
    ]
    self_metrics = [
        timeseries(
            "Scrape up",
            "short",
            (f'up{{job="procpilot-exporter", {INSTANCE}}}', "{{instance}}"),
            max_value=1,
        ),
        timeseries(
            "Collector duration",
            "s",
            (
                f"procpilot_exporter_collector_duration_seconds{{{INSTANCE}}}",
                "{{collector}} @ {{instance}}",
            ),
        ),
        timeseries(
            "Snapshot duration",
            "s",
            (f"procpilot_exporter_snapshot_duration_seconds{{{INSTANCE}}}", "{{instance}}"),
            description="Reading every /proc/<pid>/stat once; grows with the process count.",
        ),
        timeseries(
            "Collector success",
            "percentunit",
            (
                "avg by (collector) "
                f"(avg_over_time(procpilot_exporter_collector_success{{{INSTANCE}}}{rate}))",
                "{{collector}}",
            ),
            max_value=1,
        ),
        timeseries(
            "Series dropped",
            "short",
            (
                "sum by (instance, reason) "
                f"(increase(procpilot_exporter_series_dropped_total{{{INSTANCE}}}{rate}))",
                "{{reason}} @ {{instance}}",
            ),
            description="Series left out because a max_groups or max_series cap was hit.",
            bars=True,
        ),
        timeseries(
            "procfs read errors",
            "short",
            (
                "sum by (instance, reason) "
                f"(increase(procpilot_exporter_procfs_read_errors_total{{{INSTANCE}}}{rate}))",
                "{{reason}} @ {{instance}}",
            ),
            description="Processes skipped while reading /proc. vanished is normal churn; "
            "permission points at hidepid or a missing capability.",
            bars=True,
        ),
        timeseries(
            "Exporter CPU and memory",
            "percentunit",
            (f"rate(process_cpu_seconds_total{{{EXPORTER}}}{rate})", "CPU @ {{instance}}"),
            description="The exporter's own CPU, 100% is one core (its resident memory is "
            "process_resident_memory_bytes).",
        ),
        timeseries(
            "Exits accounted from taskstats",
            "short",
            (
                "sum by (instance, result) "
                f"(increase(procpilot_exporter_taskstats_exits_total{{{INSTANCE}}}{rate}))",
                "{{result}} @ {{instance}}",
            ),
            (
                "sum by (instance, reason) "
                f"(increase(procpilot_exporter_taskstats_lost_total{{{INSTANCE}}}{rate}))",
                "lost ({{reason}}) @ {{instance}}",
            ),
            description="Processes that ended, as the kernel reported them; their CPU, faults "
            "and I/O after the last scrape go to their group. Nothing here when "
            "procpilot_exporter_taskstats_listening is 0 (not root, or an old kernel).",
            bars=True,
        ),
        timeseries(
            "Config reload successful",
            "short",
            (f"procpilot_exporter_config_last_reload_successful{{{INSTANCE}}}",
             "{{instance}}"),
            max_value=1,
        ),
        table(
            "Versions",
            f"procpilot_exporter_build_info{{{INSTANCE}}}",
            ["instance", "version", "python"],
        ),
    ]
    return dashboard(
        "procpilot-exporter",
        "procpilot exporter",
        "Processes of each host: states, zombies, orphans, configured groups, top consumers.",
        [
            query_variable("instance", "Instance", "procpilot_exporter_build_info"),
            query_variable("group", "Group", 'procpilot_group_processes{instance=~"$instance"}'),
        ],
        layout(
            [
                ("Summary", summary),
                ("Zombies & orphans", zombies),
                ("Groups", groups),
                ("Groups: memory, I/O, faults, switches, files", group_depth),
                ("Top processes", top),
                ("Owners", owners),
                ("Host threads and limits", host),
                ("Exporter", self_metrics),
            ]
        ),
    )


def controller_dashboard() -> dict[str, Any]:
    rate = "[$__rate_interval]"
    programs = [
        table(
            "Current state",
            f"procpilot_program_state{{{PROGRAM}}} == 1",
            ["instance", "program", "state"],
        ),
        timeseries(
            "Programs by state",
            "short",
            (f"sum by (state) (procpilot_program_state{{{PROGRAM}}})", "{{state}}"),
            stack=True,
        ),
        timeseries(
            "Instances running vs desired",
            "short",
            (f"procpilot_program_instances{{{PROGRAM}}}", "{{program}} running"),
            (f"procpilot_program_desired_instances{{{PROGRAM}}}", "{{program}} desired"),
            overrides=[dashed(".* desired$")],
        ),
        timeseries(
            "Ready vs running instances",
            "short",
            (f"procpilot_program_instances{{{PROGRAM}}}", "{{program}} running"),
            (f"procpilot_program_ready_instances{{{PROGRAM}}}", "{{program}} ready"),
            description="Ready: serving (start_seconds passed, READY=1 or a passing health "
            "check) and not announcing STOPPING=1.",
            overrides=[dashed(".* ready$")],
        ),
        timeseries(
            "Uptime of the oldest instance",
            "s",
            (f"time() - procpilot_program_start_time_seconds{{{PROGRAM}}}", "{{program}}"),
        ),
        timeseries(
            "Last exit code",
            "none",
            (f"procpilot_program_exit_code{{{PROGRAM}}}", "{{program}}"),
            description="Killed by signal n shows as 128+n.",
        ),
    ]
    restarts = [
        timeseries(
            "Restarts by reason",
            "short",
            (
                "sum by (program, reason) "
                f"(increase(procpilot_program_restarts_total{{{PROGRAM}}}{rate}))",
                "{{program}} {{reason}}",
            ),
            bars=True,
        ),
        timeseries(
            "Backoff",
            "s",
            (f"procpilot_program_backoff_seconds{{{PROGRAM}}}", "{{program}}"),
            description="Current wait before the next start; 0 when none is pending.",
        ),
        timeseries(
            "Config reloads",
            "short",
            (
                "sum by (instance, result) "
                f"(increase(procpilot_controller_config_reloads_total{{{INSTANCE}}}{rate}))",
                "{{result}} @ {{instance}}",
            ),
            bars=True,
        ),
    ]
    resources = [
        against_limit(
            "Memory per instance vs limit",
            "bytes",
            (
                f"procpilot_program_instance_resident_memory_bytes{{{PROGRAM}}}",
                "{{program}}:{{index}}",
            ),
            "procpilot_program_memory_limit_bytes",
            description="RSS over each instance's process tree; the limit applies to each "
            "instance.",
        ),
        timeseries(
            "Memory used of limit (largest instance)",
            "percentunit",
            (
                "max by (instance, program) "
                f"(procpilot_program_instance_resident_memory_bytes{{{PROGRAM}}})"
                " / on (instance, program) "
                f"procpilot_program_memory_limit_bytes{{{PROGRAM}}}",
                "{{program}}",
            ),
            description="Past 100% the controller restarts that instance (memory_limit).",
        ),
        timeseries(
            "CPU",
            "percentunit",
            (
                "sum by (program, mode) "
                f"(rate(procpilot_program_cpu_seconds_total{{{PROGRAM}}}{rate}))",
                "{{program}} {{mode}}",
            ),
            description="All instances of the program; 100% is one core.",
            stack=True,
        ),
        against_limit(
            "Cgroup memory vs limit",
            "bytes",
            (f"procpilot_program_cgroup_memory_bytes{{{PROGRAM}}}", "{{program}}"),
            "procpilot_program_memory_limit_bytes",
            description="What the kernel charges the instances' cgroups (page cache "
            "included); at the limit it reclaims, then OOM-kills (restart reason oom_kill).",
        ),
        timeseries(
            "CPU throttled",
            "percentunit",
            (f"rate(procpilot_program_cpu_throttled_seconds_total{{{PROGRAM}}}{rate})",
             "{{program}}"),
            (f"procpilot_program_cpu_limit_cores{{{PROGRAM}}}", "{{program}} limit (cores)"),
            description="Share of time the instances were held back by limits.cpu; work "
            "that waits here is latency.",
            overrides=[dashed(".* limit .*$")],
        ),
        against_limit(
            "Tasks vs limit",
            "short",
            (f"procpilot_program_tasks{{{PROGRAM}}}", "{{program}}"),
            "procpilot_program_tasks_limit",
            description="Processes and threads; at limits.tasks fork() and thread creation "
            "fail with EAGAIN.",
        ),
    ]
    pools = [
        timeseries(
            "Workers vs desired, min and max",
            "short",
            (f"procpilot_pool_workers{{{PROGRAM}}}", "{{program}} workers"),
            (f"procpilot_pool_desired_workers{{{PROGRAM}}}", "{{program}} desired"),
            (f"procpilot_pool_min_workers{{{PROGRAM}}}", "{{program}} min"),
            (f"procpilot_pool_max_workers{{{PROGRAM}}}", "{{program}} max"),
            overrides=[dashed(".* (desired|min|max)$")],
            width=12,
        ),
        timeseries(
            "CPU utilization",
            "percentunit",
            (f"procpilot_pool_cpu_utilization_ratio{{{PROGRAM}}}", "{{program}}"),
            description="What the autoscaler compares with its target.",
            width=12,
        ),
        timeseries(
            "CPU used vs target",
            "short",
            (
                "sum by (instance, program) "
                f"(rate(procpilot_program_cpu_seconds_total{{{PROGRAM}}}{rate}))"
                f" and on (instance, program) procpilot_pool_workers{{{PROGRAM}}}",
                "{{program}} used",
            ),
            (
                f"procpilot_pool_cpu_target_cores{{{PROGRAM}}}"
                f" * procpilot_pool_workers{{{PROGRAM}}}",
                "{{program}} target",
            ),
            description="In cores: the pool's CPU against target per worker times workers.",
            overrides=[dashed(".* target$")],
        ),
        timeseries(
            "Scale events",
            "short",
            (
                "sum by (program, direction) "
                f"(increase(procpilot_pool_scale_events_total{{{PROGRAM}}}{rate}))",
                "{{program}} {{direction}}",
            ),
            bars=True,
        ),
        timeseries(
            "Time since last scale",
            "s",
            (f"time() - procpilot_pool_last_scale_time_seconds{{{PROGRAM}}}", "{{program}}"),
            description="Time since the pool last changed size.",
        ),
        timeseries(
            "At max",
            "short",
            (f"{POOL_AT_MAX.name}{{{PROGRAM}}}", "{{program}}"),
            description=POOL_AT_MAX.help,
            max_value=1,
        ),
        timeseries(
            "Metric values vs targets",
            "short",
            (f"{POOL_METRIC_VALUE.name}{{{PROGRAM}}}", "{{program}} {{metric}}"),
            (f"procpilot_pool_metric_target{{{PROGRAM}}}", "{{program}} {{metric}} target"),
            description=POOL_METRIC_VALUE.help + " Targets are per worker.",
            overrides=[dashed(".* target$")],
            width=12,
        ),
        timeseries(
            "Metric read errors",
            "short",
            (
                f"increase({POOL_METRIC_ERRORS.name}{{{PROGRAM}}}{rate})",
                "{{program}} {{metric}}",
            ),
            description=POOL_METRIC_ERRORS.help,
            bars=True,
            width=12,
        ),
    ]
    controller = [
        timeseries(
            "Scrape up",
            "short",
            (f'up{{job="procpilot-controller", {INSTANCE}}}', "{{instance}}"),
            max_value=1,
        ),
        timeseries(
            "Reaped processes",
            "short",
            (
                f"rate(procpilot_controller_reaped_processes_total{{{INSTANCE}}}{rate})",
                "{{instance}}",
            ),
            description="Per second; the controller is a subreaper and reaps orphaned "
            "descendants of its programs.",
        ),
        timeseries(
            "Hooks run and failed",
            "short",
            (
                "sum by (instance, kind) "
                f"(increase(procpilot_controller_hook_runs_total{{{INSTANCE}}}{rate}))",
                "{{kind}} run @ {{instance}}",
            ),
            (
                "sum by (instance, kind, reason) "
                f"(increase(procpilot_controller_hook_failures_total{{{INSTANCE}}}{rate}))",
                "{{kind}} {{reason}} @ {{instance}}",
            ),
            description="Failed hooks are not retried: the events they carried are lost.",
            bars=True,
        ),
        timeseries(
            "Isolation and strays",
            "short",
            (f"procpilot_controller_isolation_info{{{INSTANCE}}}", "{{backend}} @ {{instance}}"),
            (
                f"increase(procpilot_controller_leftover_processes_killed_total{{{INSTANCE}}}"
                f"{rate})",
                "leftovers killed @ {{instance}}",
            ),
            (
                f"increase(procpilot_controller_notifications_rejected_total{{{INSTANCE}}}"
                f"{rate})",
                "notifications rejected @ {{instance}}",
            ),
            description="The cgroup backend in use; processes an earlier controller left in "
            "its cells; sd_notify datagrams from processes of no instance.",
        ),
        table(
            "Versions",
            f"procpilot_controller_build_info{{{INSTANCE}}}",
            ["instance", "version", "python"],
        ),
    ]
    return dashboard(
        "procpilot-controller",
        "procpilot controller",
        "Programs supervised by procpilot-controller: states, restarts, memory, CPU, pools.",
        [
            query_variable("instance", "Instance", "procpilot_controller_build_info"),
            query_variable("program", "Program", 'procpilot_program_state{instance=~"$instance"}'),
        ],
        layout(
            [
                ("Program states", programs),
                ("Restarts & backoff", restarts),
                ("Memory & CPU", resources),
                ("Pools", pools),
                ("Controller", controller),
            ]
        ),
    )


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2) + "\n"


DASHBOARDS = {
    "procpilot-exporter.json": exporter_dashboard,
    "procpilot-controller.json": controller_dashboard,
}

if __name__ == "__main__":
    for filename, build in DASHBOARDS.items():
        (HERE / filename).write_text(render(build()))
