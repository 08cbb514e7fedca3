"""The controller's /metrics: a custom collector over one ControllerView per scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from procpilot.controller.view import ControllerView, ProgramView
from procpilot.core.version import build_info

RESTART_REASONS = ("exit", "signal", "failed_start", "memory_limit", "oom_kill", "health", "manual")
RELOAD_RESULTS = ("success", "failure")
SCALE_DIRECTIONS = ("up", "down")

Family = GaugeMetricFamily | CounterMetricFamily


class ControllerCollector(Collector):
    """Renders the view ``take_view`` returns (called from the HTTP thread)."""

    def __init__(self, take_view: Callable[[], ControllerView], states: Sequence[str]) -> None:
        self.take_view = take_view
        self.states = tuple(states)

    def collect(self) -> Iterator[Family]:
        view = self.take_view()
        p = "procpilot_program_"
        state = GaugeMetricFamily(p + "state", "Program state (one-hot).",
                                  labels=["program", "state"])
        instances = GaugeMetricFamily(p + "instances", "Instances running.", labels=["program"])
        desired = GaugeMetricFamily(p + "desired_instances", "Instances wanted.",
                                    labels=["program"])
        restarts = CounterMetricFamily(p + "restarts", "Restarts by reason.",
                                       labels=["program", "reason"])
        exit_code = GaugeMetricFamily(p + "exit_code",
                                      "Last exit code of an instance (signal n as 128+n).",
                                      labels=["program"])
        backoff = GaugeMetricFamily(p + "backoff_seconds",
                                    "Longest current wait before a restart (0 when none).",
                                    labels=["program"])
        start_time = GaugeMetricFamily(p + "start_time_seconds",
                                       "Unix time the oldest running instance started.",
                                       labels=["program"])
        rss = GaugeMetricFamily(p + "resident_memory_bytes",
                                "Resident memory of all instances' process trees.",
                                labels=["program"])
        rss_each = GaugeMetricFamily(
            p + "instance_resident_memory_bytes",
            "Resident memory of each running instance's process tree (the limit applies to it).",
            labels=["program", "index"])
        limit = GaugeMetricFamily(p + "memory_limit_bytes",
                                  "Memory limit per instance (absent when unlimited).",
                                  labels=["program"])
        cpu = CounterMetricFamily(p + "cpu_seconds", "CPU time of all instances' process trees.",
                                  labels=["program", "mode"])
        for prog in view.programs:
            name = prog.program
            for s in self.states:
                state.add_metric([name, s], 1.0 if prog.state == s else 0.0)
            running = prog.running
            instances.add_metric([name], len(running))
            desired.add_metric([name], prog.desired)
            for reason in RESTART_REASONS:
                restarts.add_metric([name, reason], prog.restarts.get(reason, 0))
            if prog.exit_code is not None:
                exit_code.add_metric([name], prog.exit_code)
            backoff.add_metric([name], max((i.backoff_seconds for i in prog.instances),
                                           default=0.0))
            starts = [i.started_at for i in running if i.started_at is not None]
            if starts:
                start_time.add_metric([name], min(starts))
            rss.add_metric([name], sum(i.rss_bytes or 0 for i in prog.instances))
            for inst in prog.instances:
                if inst.rss_bytes is not None:
                    rss_each.add_metric([name, inst.id.rpartition(":")[2]], inst.rss_bytes)
            if prog.memory_limit is not None:
                limit.add_metric([name], prog.memory_limit)
            cpu.add_metric([name, "user"], prog.cpu_user)
            cpu.add_metric([name, "system"], prog.cpu_system)
        yield from (state, instances, desired, restarts, exit_code, backoff, start_time, rss,
                    rss_each, limit, cpu)
        yield from pool_families(view.programs)
        c = "procpilot_controller_"
        reaped = CounterMetricFamily(c + "reaped_processes",
                                     "Orphaned descendants reaped (not managed instances).")
        reaped.add_metric([], view.reaped_processes)
        reloads = CounterMetricFamily(c + "config_reloads", "Config reloads by result.",
                                      labels=["result"])
        for result in RELOAD_RESULTS:
            reloads.add_metric([result], view.reloads.get(result, 0))
        last_ok = GaugeMetricFamily(c + "config_last_reload_successful",
                                    "1 if the last config reload succeeded (or none was tried).",
                                    value=1 if view.last_reload_ok else 0)
        last_time = GaugeMetricFamily(c + "config_last_reload_success_timestamp_seconds",
                                      "Unix time the config was last loaded successfully.",
                                      value=view.last_reload_success)
        yield from (reaped, reloads, last_ok, last_time, build_info("procpilot_controller"))


def pool_families(programs: Sequence[ProgramView]) -> list[Family]:
    """The procpilot_pool_* families, with series only for programs with an autoscale section."""
    p = "procpilot_pool_"
    workers = GaugeMetricFamily(p + "workers", "Workers running.", labels=["program"])
    desired = GaugeMetricFamily(p + "desired_workers",
                                "Workers wanted by the last decision (autoscaler or pin).",
                                labels=["program"])
    low = GaugeMetricFamily(p + "min_workers", "Fewest workers (autoscale.min).",
                            labels=["program"])
    high = GaugeMetricFamily(p + "max_workers", "Most workers (autoscale.max).",
                             labels=["program"])
    ratio = GaugeMetricFamily(p + "cpu_utilization_ratio",
                              "Last measured CPU per worker over the target (absent before "
                              "the first measurement).", labels=["program"])
    target = GaugeMetricFamily(p + "cpu_target_cores", "CPU target per worker, in cores.",
                               labels=["program"])
    events = CounterMetricFamily(p + "scale_events", "Autoscaler changes of the worker count.",
                                 labels=["program", "direction"])
    last = GaugeMetricFamily(p + "last_scale_time_seconds",
                             "Unix time of the last scale event (absent before the first).",
                             labels=["program"])
    at_max = GaugeMetricFamily(p + "at_max",
                               "1 while the autoscaler wants more workers than max "
                               "(the pool is saturated).", labels=["program"])
    for prog in programs:
        pool = prog.pool
        if pool is None:
            continue
        labels = [prog.program]
        workers.add_metric(labels, len(prog.running))
        desired.add_metric(labels, pool.desired)
        low.add_metric(labels, pool.min)
        high.add_metric(labels, pool.max)
        if pool.utilization is not None:
            ratio.add_metric(labels, pool.utilization)
        target.add_metric(labels, pool.cpu_target_cores)
        for direction in SCALE_DIRECTIONS:
            events.add_metric([prog.program, direction], pool.scale_events.get(direction, 0))
        if pool.last_scale_time is not None:
            last.add_metric(labels, pool.last_scale_time)
        at_max.add_metric(labels, 1.0 if pool.at_max else 0.0)
    return [workers, desired, low, high, ratio, target, events, last, at_max]


def make_registry(collector: ControllerCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
