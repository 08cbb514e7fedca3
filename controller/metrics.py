"""The controller's /metrics: a custom collector over one ControllerView per scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from procpilot.controller import families as f
from procpilot.controller.view import ControllerView, ProgramView
from procpilot.core.version import build_info


class ControllerCollector(Collector):
    """Renders the view ``take_view`` returns (called from the HTTP thread)."""

    def __init__(self, take_view: Callable[[], ControllerView]) -> None:
        self.take_view = take_view

    def collect(self) -> Iterator[Metric]:
        view = self.take_view()
        yield from program_families(view.programs)
        yield from pool_families(view.programs)
        reaped = f.REAPED.of(view.reaped_processes)
        isolation = f.ISOLATION_INFO.new()
        isolation.add_metric([view.isolation], 1)
        yield from view.reloads.metrics(f.RELOADS)
        yield from (reaped, isolation,
                    f.LEFTOVERS_KILLED.of(view.leftovers_killed), *hook_families(view),
                    f.NOTIFICATIONS_REJECTED.of(view.notifications_rejected),
                    build_info(f.BUILD_INFO))


def program_families(programs: Sequence[ProgramView]) -> list[Metric]:
    """The procpilot_program_* families, with series for every program."""
    state, instances, desired = f.PROGRAM_STATE.new(), f.PROGRAM_INSTANCES.new(), \
        f.PROGRAM_DESIRED.new()
    ready = f.PROGRAM_READY.new()
    restarts, exit_code, backoff = f.PROGRAM_RESTARTS.new(), f.PROGRAM_EXIT_CODE.new(), \
        f.PROGRAM_BACKOFF.new()
    start_time, rss, rss_each = f.PROGRAM_START_TIME.new(), f.PROGRAM_RESIDENT_MEMORY.new(), \
        f.INSTANCE_RESIDENT_MEMORY.new()
    limit, cpu = f.PROGRAM_MEMORY_LIMIT.new(), f.PROGRAM_CPU.new()
    cgroup_memory, cpu_limit = f.PROGRAM_CGROUP_MEMORY.new(), f.PROGRAM_CPU_LIMIT.new()
    throttled, tasks = f.PROGRAM_CPU_THROTTLED.new(), f.PROGRAM_TASKS.new()
    tasks_limit = f.PROGRAM_TASKS_LIMIT.new()
    for prog in programs:
        name = prog.program
        for s in f.STATES:
            state.add_metric([name, s], 1.0 if prog.state == s else 0.0)
        running = prog.running
        instances.add_metric([name], len(running))
        ready.add_metric([name], sum(i.ready for i in prog.instances))
        desired.add_metric([name], prog.desired)
        for reason in f.PROGRAM_RESTARTS.values["reason"]:
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
        for family, kind in ((limit, "memory"), (cpu_limit, "cpu"), (tasks_limit, "tasks")):
            if (value := prog.limit(kind)) is not None:
                family.add_metric([name], float(value))
        measured = [i.cgroup_memory_bytes for i in prog.instances
                    if i.cgroup_memory_bytes is not None]
        if measured:
            cgroup_memory.add_metric([name], sum(measured))
        counted = [i.tasks for i in prog.instances if i.tasks is not None]
        if counted:
            tasks.add_metric([name], sum(counted))
        if prog.cpu_throttled is not None:
            throttled.add_metric([name], prog.cpu_throttled)
        cpu.add_metric([name, "user"], prog.cpu_user)
        cpu.add_metric([name, "system"], prog.cpu_system)
    return [state, instances, ready, desired, restarts, exit_code, backoff, start_time, rss,
            rss_each, limit, cgroup_memory, cpu, cpu_limit, throttled, tasks, tasks_limit]


def hook_families(view: ControllerView) -> list[Metric]:
    """Hooks run and failed, every kind and reason from 0."""
    runs, failures = f.HOOK_RUNS.new(), f.HOOK_FAILURES.new()
    for kind in f.HOOK_KINDS:
        runs.add_metric([kind], view.hook_runs.get(kind, 0))
        for reason in f.HOOK_FAILURES.values["reason"]:
            failures.add_metric([kind, reason], view.hook_failures.get((kind, reason), 0))
    return [runs, failures]


def pool_families(programs: Sequence[ProgramView]) -> list[Metric]:
    """The procpilot_pool_* families, with series only for programs with an autoscale section."""
    workers, desired, low, high = f.POOL_WORKERS.new(), f.POOL_DESIRED.new(), \
        f.POOL_MIN.new(), f.POOL_MAX.new()
    ratio, target, events = f.POOL_UTILIZATION.new(), f.POOL_CPU_TARGET.new(), \
        f.POOL_SCALE_EVENTS.new()
    last, at_max = f.POOL_LAST_SCALE.new(), f.POOL_AT_MAX.new()
    value, per_worker, errors = f.POOL_METRIC_VALUE.new(), f.POOL_METRIC_TARGET.new(), \
        f.POOL_METRIC_ERRORS.new()
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
        if pool.cpu_target_cores is not None:
            target.add_metric(labels, pool.cpu_target_cores)
        for m in pool.metrics:
            if m.value is not None:
                value.add_metric([prog.program, m.name], m.value)
            per_worker.add_metric([prog.program, m.name], m.per_worker)
            errors.add_metric([prog.program, m.name], m.errors)
        for direction in f.SCALE_DIRECTIONS:
            events.add_metric([prog.program, direction], pool.scale_events.get(direction, 0))
        if pool.last_scale_time is not None:
            last.add_metric(labels, pool.last_scale_time)
        at_max.add_metric(labels, 1.0 if pool.at_max else 0.0)
    return [workers, desired, low, high, ratio, target, events, last, at_max, value, per_worker,
            errors]


def make_registry(collector: ControllerCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
