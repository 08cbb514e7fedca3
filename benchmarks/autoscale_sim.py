"""Simulate the pool autoscaler against synthetic load and compare it with a step rule.

Run: .venv/bin/python benchmarks/autoscale_sim.py [--json] [--host-cores N] [--seed N]

The model, one step per simulated second:
- the pool has a demand of ``load(t)`` cores, shared evenly by the workers that are serving;
  a worker does at most one core of work, demand above that goes unserved;
- a new worker first spends ``STARTUP_SECONDS`` at one core starting up (imports, caches)
  and serves nothing meanwhile; this is what the warm-up exclusion is for;
- unrelated processes on the host use ``background(t)`` cores;
- every ``INTERVAL`` seconds each policy sees the last interval's CPU and sets the count;
  new workers start at once, stopped ones (newest first) vanish at once.

Yardstick: the needed count is ceil(load / 0.7 cores) clamped to [min, max], the pool's
target. The pool has min 2, max 8 workers and a 70 % CPU target, on a host with one core per
worker at max (8 cores). The step rule compared with it is the simplest a supervisor could
have: one worker more above 70 % host CPU, one fewer below 35 %.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

from procpilot.controller.autoscale import (
    HostSample,
    Policy,
    ScaleState,
    Target,
    WorkerSample,
    decide,
    past_warmup,
)
from procpilot.controller.instance import pick_to_stop

INTERVAL = 15
STARTUP_SECONDS = 2
MIN_WORKERS, MAX_WORKERS, TARGET_CORES = 2, 8, 0.7
STEP_AT = 300
POLICY = Policy(min_workers=MIN_WORKERS, max_workers=MAX_WORKERS,
                targets=(Target("cpu", "cpu", TARGET_CORES),))
SYSTEM = replace(POLICY, targets=(Target("cpu", "system", TARGET_CORES),))


@dataclass
class Worker:
    ident: int
    started_at: int
    cpu_seconds: float = 0.0  # over the current interval


@dataclass(frozen=True)
class Scenario:
    name: str
    seconds: int
    load: Callable[[int], float]  # pool demand in cores at second t
    background: Callable[[int], float] = lambda _t: 0.0  # unrelated host load in cores
    step: bool = False  # the load steps at STEP_AT; report the time to reach the new need


class Controller(Protocol):
    def __call__(self, now: int, workers: Sequence[Worker], host_cpu_cores: float) -> int:
        """The count for the next interval, from the last interval's worker and host CPU."""


@dataclass
class Ours:
    policy: Policy
    state: ScaleState = field(default_factory=ScaleState)

    def __call__(self, now: int, workers: Sequence[Worker], host_cpu_cores: float) -> int:
        measurement: list[WorkerSample] | HostSample
        if self.policy.targets[0].kind == "system":
            measurement = HostSample(host_cpu_cores)
        else:
            sample_start = now - INTERVAL
            measurement = [
                WorkerSample(w.cpu_seconds / INTERVAL,
                             past_warmup(w.started_at, sample_start, self.policy))
                for w in workers
            ]
        decision = decide(self.policy, len(workers), {"cpu": measurement}, self.state, float(now))
        self.state = decision.state
        return decision.desired


@dataclass
class StepRule:
    """One worker up when host CPU is above the target, one down when below half of it."""

    cores: int
    target_percent: float = 70.0

    def __call__(self, now: int, workers: Sequence[Worker], host_cpu_cores: float) -> int:
        percent = 100 * host_cpu_cores / self.cores
        count = len(workers)
        if percent > self.target_percent and count < MAX_WORKERS:
            return count + 1
        if percent < self.target_percent / 2 and count > MIN_WORKERS:
            return count - 1
        return count


@dataclass(frozen=True)
class Result:
    scenario: str
    policy: str
    reach_seconds: int | None  # from the step to the needed count; None: no step, or never
    direction_changes: int
    scale_events: int
    wasted_worker_seconds: int  # workers above the needed count
    short_worker_seconds: int  # workers below the needed count
    unserved_core_seconds: float  # demand no worker could serve


def needed(load: float) -> int:
    return min(MAX_WORKERS, max(MIN_WORKERS, math.ceil(load / TARGET_CORES - 1e-9)))


def direction_changes(counts: Sequence[int]) -> int:
    """How often the count turned from growing to shrinking or back."""
    signs = [(b > a) - (b < a) for a, b in itertools.pairwise(counts) if a != b]
    return sum(1 for a, b in itertools.pairwise(signs) if a != b)


def resize(workers: list[Worker], desired: int, now: int, idents: Iterator[int]) -> list[Worker]:
    if desired >= len(workers):
        return workers + [Worker(next(idents), now) for _ in range(desired - len(workers))]
    gone = set(pick_to_stop([(w.ident, w.started_at) for w in workers], len(workers) - desired))
    return [w for w in workers if w.ident not in gone]


def simulate(scenario: Scenario, policy: str, controller: Controller, cores: int) -> Result:
    idents = itertools.count()
    workers = resize([], needed(scenario.load(0)), -10 * INTERVAL, idents)
    counts = [len(workers)]  # after each decision
    host_cpu_seconds = unserved = 0.0
    wasted = short = 0
    reach: int | None = None
    for t in range(scenario.seconds):
        if t > 0 and t % INTERVAL == 0:
            # New workers start right at the tick, so past_warmup() leaves out exactly
            # their first full interval.
            workers = resize(workers, controller(t, workers, host_cpu_seconds / INTERVAL), t,
                             idents)
            counts.append(len(workers))
            for w in workers:
                w.cpu_seconds = 0.0
            host_cpu_seconds = 0.0
        load = scenario.load(t)
        serving = [w for w in workers if t - w.started_at >= STARTUP_SECONDS]
        share = min(1.0, load / len(serving)) if serving else 0.0
        for w in workers:
            w.cpu_seconds += share if w in serving else 1.0
        pool_cpu = len(workers) - len(serving) + share * len(serving)
        host_cpu_seconds += min(cores, pool_cpu + scenario.background(t))
        need = needed(load)
        wasted += max(0, len(workers) - need)
        short += max(0, need - len(workers))
        unserved += max(0.0, load - share * len(serving))
        if scenario.step and reach is None and t >= STEP_AT and len(workers) == need:
            reach = t - STEP_AT
    events = sum(1 for a, b in itertools.pairwise(counts) if a != b)
    return Result(scenario.name, policy, reach, direction_changes(counts), events, wasted,
                  short, round(unserved, 1))


def scenarios(seed: int) -> list[Scenario]:
    rng = random.Random(seed)
    # Stationary noise: a new level, uniform within +/-20 % of 2.8 cores, every interval.
    levels = [2.8 * rng.uniform(0.8, 1.2) for _ in range(3600 // INTERVAL)]
    return [
        Scenario("step up x2", 900, lambda t: 1.3 if t < STEP_AT else 2.6, step=True),
        Scenario("step up x3", 900, lambda t: 1.3 if t < STEP_AT else 3.9, step=True),
        Scenario("step down /3", 1200, lambda t: 3.9 if t < STEP_AT else 1.3, step=True),
        Scenario("slow ramp", 1500, lambda t: 1.4 + 4.2 * min(1.0, t / 1200)),
        Scenario("noise +/-20%", 3600, lambda t: levels[t // INTERVAL]),
        Scenario("unrelated load", 900, lambda _t: 2.1,
                 background=lambda t: 0.0 if t < STEP_AT else 4.0),
    ]


def controllers(cores: int) -> dict[str, Callable[[], Controller]]:
    return {
        "ours (defaults)": lambda: Ours(POLICY),
        "ours, stabilization 60s": lambda: Ours(
            replace(POLICY, scale_down_stabilization_seconds=60)),
        "ours, metric: system": lambda: Ours(SYSTEM),
        "step rule": lambda: StepRule(cores),
    }


def run(seed: int, cores: int) -> list[Result]:
    return [
        simulate(scenario, name, make(), cores)
        for scenario in scenarios(seed)
        for name, make in controllers(cores).items()
    ]


def totals(results: Sequence[Result]) -> list[Result]:
    """Per policy, summed over all scenarios."""
    policies = dict.fromkeys(r.policy for r in results)
    return [
        Result("all scenarios", policy, None,
               sum(r.direction_changes for r in mine), sum(r.scale_events for r in mine),
               sum(r.wasted_worker_seconds for r in mine),
               sum(r.short_worker_seconds for r in mine),
               round(sum(r.unserved_core_seconds for r in mine), 1))
        for policy in policies
        for mine in [[r for r in results if r.policy == policy]]
    ]


def table(results: Sequence[Result]) -> str:
    header = ("scenario", "policy", "reach s", "dir chg", "events", "waste w*s", "short w*s",
              "unserved core*s")
    steps = {r.scenario for r in results if "step" in r.scenario}

    def reach(r: Result) -> str:
        if r.reach_seconds is not None:
            return str(r.reach_seconds)
        return "never" if r.scenario in steps else "-"

    rows = [header] + [
        (r.scenario, r.policy, reach(r), str(r.direction_changes), str(r.scale_events),
         str(r.wasted_worker_seconds), str(r.short_worker_seconds),
         f"{r.unserved_core_seconds:.0f}")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                  for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


# --- queue consumers: CPU is the wrong signal -------------------------------------------

BURST_EVERY, BURST_JOBS = 120, 60  # jobs arrive in bursts
JOB_SECONDS, JOB_CORES = 4, 0.1  # each job waits on I/O: 4 s of wall time at 0.1 cores
JOBS_PER_WORKER = 5  # the backlog target: a worker's share of the queue
QUEUE_MAX = 20


@dataclass(frozen=True)
class QueueResult:
    policy: str
    worker_seconds: int  # workers running, summed over the run
    p95_wait_seconds: float  # from a job's arrival to its start
    max_wait_seconds: int


def simulate_queue(policy: Policy, name: str, seconds: int = 3600) -> QueueResult:
    """Bursts of I/O-bound jobs, a FIFO queue, one job at a time per worker.

    A worker that just started serves after STARTUP_SECONDS; a stopped worker's job goes
    back to the front of the queue (it is redone). The policy sees each worker's CPU and
    the backlog (queued jobs) every INTERVAL.
    """
    queue: list[int] = []  # arrival times
    busy: dict[int, tuple[int, int]] = {}  # worker -> (job arrival, seconds left)
    started: dict[int, int] = {}
    cpu: dict[int, float] = {}
    waits: list[int] = []
    idents, state, used = itertools.count(), ScaleState(), 0
    for t in range(seconds):
        if t % BURST_EVERY == 0:
            queue += [t] * BURST_JOBS
        if t > 0 and t % INTERVAL == 0:
            samples = [WorkerSample(cpu.get(w, 0.0) / INTERVAL,
                                    past_warmup(started[w], t - INTERVAL, policy))
                       for w in started]
            readings = {"cpu": samples, "backlog": float(len(queue) + len(busy))}
            decision = decide(policy, len(started), readings, state, float(t))
            state = decision.state
            while len(started) < decision.desired:
                started[next(idents)] = t
            for w in pick_to_stop(list(started.items()), len(started) - decision.desired):
                if w in busy:
                    queue.insert(0, busy.pop(w)[0])
                del started[w]
            cpu.clear()
        for w, since in started.items():
            if w not in busy and queue and t - since >= STARTUP_SECONDS:
                arrived = queue.pop(0)
                waits.append(t - arrived)
                busy[w] = (arrived, JOB_SECONDS)
            if w in busy:
                cpu[w] = cpu.get(w, 0.0) + JOB_CORES
                arrived, left = busy[w]
                busy[w] = (arrived, left - 1)
                if left - 1 == 0:
                    del busy[w]
        used += len(started)
    waits.sort()
    return QueueResult(name, used, float(waits[int(len(waits) * 0.95) - 1]), waits[-1])


def queue_policies() -> dict[str, Policy]:
    cpu = Policy(min_workers=1, max_workers=QUEUE_MAX,
                 targets=(Target("cpu", "cpu", 0.05),), scale_down_stabilization_seconds=60)
    backlog = Policy(min_workers=0, max_workers=QUEUE_MAX,
                     targets=(Target("backlog", "total", JOBS_PER_WORKER),),
                     scale_down_stabilization_seconds=60)
    return {"CPU (0.05 cores per worker)": cpu,
            f"backlog ({JOBS_PER_WORKER} jobs per worker, min 0)": backlog}


def queue_table(results: Sequence[QueueResult]) -> str:
    rows = [f"{'policy':<40} {'worker*s':>9} {'p95 wait s':>10} {'max wait s':>10}"]
    rows += [f"{r.policy:<40} {r.worker_seconds:>9} {r.p95_wait_seconds:>10.0f} "
             f"{r.max_wait_seconds:>10}" for r in results]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--host-cores", type=int, default=MAX_WORKERS,
                        help="cores of the simulated host (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="noise seed (default: %(default)s)")
    args = parser.parse_args(argv)
    results = run(args.seed, args.host_cores)
    summary = totals(results)
    queue = [simulate_queue(policy, name) for name, policy in queue_policies().items()]
    if args.json:
        print(json.dumps({"host_cores": args.host_cores, "seed": args.seed,
                          "results": [asdict(r) for r in results + summary],
                          "queue": [asdict(r) for r in queue]}, indent=2))
    else:
        print(f"host: {args.host_cores} cores; pool: min {MIN_WORKERS}, max {MAX_WORKERS}, "
              f"target {TARGET_CORES} cores/worker; interval {INTERVAL} s; seed {args.seed}")
        print(table(results + summary))
        print(f"\nqueue: {BURST_JOBS} jobs every {BURST_EVERY} s, each {JOB_SECONDS} s of I/O at "
              f"{JOB_CORES} cores; min..max 0/1..{QUEUE_MAX}; 1 h")
        print(queue_table(queue))
    return 0


if __name__ == "__main__":
    sys.exit(main())
