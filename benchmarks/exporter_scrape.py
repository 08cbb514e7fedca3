"""Scrape time and memory of procpilot-exporter against the usual alternatives.

For each size N, start N idle processes, then procpilot-exporter twice (defaults, and
grouping every process by comm), Debian's prometheus-process-exporter (the same
grouping, no threads, no smaps) and prometheus-node-exporter with only its processes
collector, each on a free 127.0.0.1 port. Then, round after round, time one full GET
/metrics of each, and in the same rounds in-process references: a bare loop reading
every /proc/<pid>/stat (the floor for any exporter written in Python), one
psutil.process_iter pass, procpilot's ProcReader.snapshot() alone, and procpilot's
whole scrape without HTTP. The start of each round rotates so no tool always runs
right after another. Afterwards, print per N the median and p90 of each, ratios, each
exporter's CPU time per scrape and memory (VmRSS, VmHWM), and the targets below;
--profile K adds a cProfile of K in-process scrapes, --json prints it all as JSON.

"procpilot by comm" turns every per-group family on except PSS (the defaults for a group):
status, io and the fd directory are read for every process, as process-exporter does.

With --exits-per-second R (0 skips it), a last phase measures what accounting processes
that end between scrapes costs: procpilot-exporter with one group for them, while
_exit_burst.py starts and ends R processes a second (each burning --exit-burn-ms of CPU)
for --exits-seconds, scraped every 5 s. It reports the exporter's CPU, the share of the
exits credited to the group and of their CPU (against the generator's getrusage); the
other exporters see none of these processes.

    .venv/bin/python benchmarks/exporter_scrape.py [--sizes 2000,10000] [--rounds 15] \
        [--exits-per-second 1000]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    Server,
    cpu_seconds,
    free_port,
    percentile,
    scrape,
    status_kib,
)
from idle_procs import IdleProcesses

from procpilot.core.procfs import FS, ProcReader
from procpilot.core.procfs.hoststat import read_busy_seconds
from procpilot.exporter import config
from procpilot.exporter.collectors import COLLECTORS
from procpilot.exporter.scrape import ScrapeCollector

HOST, SELF = "(host)", "(benchmark)"  # keys of cpu_marks() next to the server names
SUBJECT = "procpilot-exporter"
BY_COMM = "procpilot by comm"
IN_PROCESS = "procpilot by comm, in-process"
BARE = "bare stat loop"
NODE = "node_exporter processes"
PROCESS_EXPORTER = "process-exporter"


@dataclass(frozen=True)
class Goals:
    """Targets at 10,000 processes for one procpilot configuration."""

    bare_ratio: float | None  # median at most this many times the bare stat loop's
    beat_node: bool  # faster than node_exporter's processes collector
    times_process_exporter: float  # at least this many times faster than process-exporter
    rss_kib: int


GOALS = {
    SUBJECT: Goals(1.5, True, 10, 60 * 1024),  # all collectors, no groups
    BY_COMM: Goals(None, False, 5, 80 * 1024),  # every per-group family but PSS
}

# Every process in a group named after its comm; '.*' also matches kernel threads,
# whose cmdline is empty. procpilot runs twice: with its defaults (no groups) and with
# the same grouping as process-exporter, which is the like-for-like comparison.
PROCESS_EXPORTER_CONFIG = 'process_names:\n  - name: "{{.Comm}}"\n    cmdline: [".*"]\n'
PROCPILOT_BY_COMM_CONFIG = """groups:
  - name: "{comm}"
    cmdline: ".*"
    # every per-group family except PSS: the defaults, spelled out
    swap: true
    context_switches: true
    io: true
    fds: true
    pss: false
"""
EXITS_CONFIG = "groups: [{name: exits, comm: [ppbench-exit]}]\n"
EXIT_BURST = str(Path(__file__).resolve().parent / "_exit_burst.py")


# --- what gets measured --------------------------------------------------------------


@dataclass
class Tool:
    """One row: something to time once per round; `measure` returns its output size."""

    name: str
    measure: Callable[[], int]
    unit: str  # what measure() counts: "series" or "procs"
    server: Server | None = None


def bare_stat_loop() -> int:
    """Open and read /proc/<pid>/stat of every process, parse nothing.

    Unbuffered os.open/os.read, the cheapest way Python has (`open()` adds ~40% here),
    so this is a floor for any Python exporter rather than a soft target.
    """
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fd = os.open(f"/proc/{name}/stat", os.O_RDONLY)
                try:
                    os.read(fd, 4096)
                finally:
                    os.close(fd)
            except OSError:
                continue
            count += 1
    return count


def psutil_pass() -> int:
    return sum(1 for _ in psutil.process_iter(["status", "memory_info", "cpu_times"]))


def count_series(body: bytes) -> int:
    """Samples in a text exposition: lines that are neither comments nor blank."""
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def scraper(port: int, timeout: float) -> Callable[[], int]:
    return lambda: count_series(scrape(port, timeout=timeout)[1])


def snapshotter() -> Callable[[], int]:
    reader = ProcReader(FS.at())  # one reader across rounds keeps its caches, as the exporter's
    return lambda: len(reader.snapshot().procs)


def in_process_exporter(config_file: str) -> Callable[[], bytes]:
    """What procpilot-exporter does per scrape minus HTTP: all collectors, text format."""
    registry = CollectorRegistry()
    cfg = config.load(config_file)
    registry.register(ScrapeCollector(ProcReader(FS.at()), cfg, list(COLLECTORS)))
    return lambda: generate_latest(registry)


def profile(work: Callable[[], object], times: int, top: int = 25) -> str:
    """cProfile of `times` calls of work: the `top` functions by own time, as text."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(times):
        work()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --- servers ---------------------------------------------------------------------------


@dataclass
class ServerSpec:
    name: str
    binary: str | None
    argv: Callable[[str, int], list[str]]  # (binary, port) -> command line


@dataclass
class Configs:
    process_exporter: str
    procpilot_by_comm: str


def write_configs(directory: str) -> Configs:
    configs = Configs(
        os.path.join(directory, "process-exporter.yml"),
        os.path.join(directory, "procpilot-by-comm.yml"),
    )
    for path, text in (
        (configs.process_exporter, PROCESS_EXPORTER_CONFIG),
        (configs.procpilot_by_comm, PROCPILOT_BY_COMM_CONFIG),
    ):
        with open(path, "w") as f:
            f.write(text)
    return configs


def server_specs(configs: Configs) -> list[ServerSpec]:
    subject = Path(sys.executable).parent / "procpilot-exporter"  # the venv we run in
    procpilot = str(subject) if subject.exists() else shutil.which("procpilot-exporter")
    return [
        ServerSpec(
            SUBJECT, procpilot, lambda b, port: [b, f"--web.listen-address=127.0.0.1:{port}"]
        ),
        ServerSpec(
            BY_COMM,
            procpilot,
            lambda b, port: [
                b,
                f"--web.listen-address=127.0.0.1:{port}",
                f"--config.file={configs.procpilot_by_comm}",
            ],
        ),
        ServerSpec(
            PROCESS_EXPORTER,
            shutil.which("prometheus-process-exporter"),
            lambda b, port: [
                b,
                f"-web.listen-address=127.0.0.1:{port}",
                f"-config.path={configs.process_exporter}",
                "-threads=false",
                "-gather-smaps=false",
            ],
        ),
        ServerSpec(
            NODE,
            shutil.which("prometheus-node-exporter"),
            lambda b, port: [
                b,
                f"--web.listen-address=127.0.0.1:{port}",
                "--collector.disable-defaults",
                "--collector.processes",
            ],
        ),
    ]


def tool_version(binary: str) -> str:
    """First line of `binary --version`, for the record."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "?"


# --- pure summaries ----------------------------------------------------------------------


@dataclass
class Row:
    tool: str
    median_s: float
    p90_s: float
    vs_bare: float | None  # median / bare loop's median
    subject_vs_this: float | None  # procpilot median / this median: < 1 means procpilot wins
    output: str  # "<count> series" or "<count> procs", from the last round
    cpu_s_per_scrape: float | None = None
    rss_kib: int | None = None
    hwm_kib: int | None = None


@dataclass
class Target:
    subject: str
    goal: str
    met: bool | None  # None: could not be judged (a tool missing)
    detail: str


def summarize(times: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    """Per tool: (median, p90) of its times."""
    return {
        name: (statistics.median(values), percentile(values, 90))
        for name, values in times.items()
        if values
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def check_targets(
    medians: dict[str, float], subject: str, subject_rss_kib: int | None
) -> list[Target]:
    goals = GOALS[subject]
    mine = medians.get(subject)
    vs_bare = ratio(mine, medians.get(BARE))
    vs_node = ratio(mine, medians.get(NODE))
    vs_pe = ratio(medians.get(PROCESS_EXPORTER), mine)

    def judged(goal: str, value: float | None, ok: Callable[[float], bool], text: str) -> Target:
        if value is None:
            return Target(subject, goal, None, "not measured")
        return Target(subject, goal, ok(value), text.format(value))

    targets = []
    if goals.bare_ratio is not None:
        limit = goals.bare_ratio
        targets.append(judged(f"median <= {limit}x bare stat loop", vs_bare,
                              lambda v: v <= limit, "{:.2f}x"))
    if goals.beat_node:
        targets.append(judged("faster than node_exporter processes", vs_node, lambda v: v < 1,
                              "{:.2f}x its time"))
    times = goals.times_process_exporter
    targets.append(judged(f">= {times:g}x faster than process-exporter", vs_pe,
                          lambda v: v >= times, "{:.1f}x faster"))
    targets.append(judged(
        f"RSS < {goals.rss_kib // 1024} MB",
        None if subject_rss_kib is None else float(subject_rss_kib),
        lambda v: v < goals.rss_kib,
        "{:.0f} KiB",
    ))
    return targets


# --- running ---------------------------------------------------------------------------


@dataclass
class SizeResult:
    idle: int
    procs_seen: int
    idle_spawn_s: float
    idle_memory_bytes: int
    rows: list[Row]
    targets: list[Target]
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    background_cores: float = 0.0  # CPU others used during the measured rounds
    profile: str = ""  # cProfile text of in-process scrapes, with --profile


def cpu_marks(tools: Sequence[Tool]) -> dict[str, float]:
    """CPU seconds so far: of each server, of this process and of the whole host."""
    marks = {t.name: cpu_seconds(t.server.pid) for t in tools if t.server}
    own = os.times()
    marks[SELF], marks[HOST] = own.user + own.system, read_busy_seconds(FS.at()) or 0.0
    return marks


def background_cores(used: dict[str, float], wall: float) -> float:
    """Cores the rest of the machine kept busy: host CPU minus ours and the servers'.

    `used` holds the CPU seconds of each cpu_marks() key over `wall` seconds. A shared
    machine skews timings; this says by how much, where a load average would mostly
    count our own burst of forks.
    """
    ours = sum(v for k, v in used.items() if k != HOST)
    return max(used[HOST] - ours, 0.0) / wall if wall > 0 else 0.0


def run_rounds(
    tools: Sequence[Tool], rounds: int, label: str
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Time each tool once per round, rotating who goes first.

    Returns the times per tool and what each measured in the last round.
    """
    times: dict[str, list[float]] = {t.name: [] for t in tools}
    outputs: dict[str, int] = {}
    for r in range(rounds):
        shift = r % len(tools)
        for tool in [*tools[shift:], *tools[:shift]]:
            started = time.perf_counter()
            outputs[tool.name] = tool.measure()
            times[tool.name].append(time.perf_counter() - started)
        log(f"  {label} round {r + 1}/{rounds}")
    return times, outputs


def start_servers(
    stack: ExitStack, specs: Sequence[ServerSpec], timeout: float
) -> tuple[list[Tool], list[str], list[str]]:
    """Start every server whose binary exists; (tools, skipped, errors)."""
    tools: list[Tool] = []
    skipped: list[str] = []
    errors: list[str] = []
    for spec in specs:
        if spec.binary is None:
            skipped.append(f"{spec.name}: binary not found")
            continue
        port = free_port()
        server = stack.enter_context(Server(spec.name, spec.argv(spec.binary, port), port))
        try:
            server.wait_ready(timeout=timeout)
        except RuntimeError as e:
            errors.append(str(e))
            continue
        tools.append(Tool(spec.name, scraper(port, timeout), "series", server))
    return tools, skipped, errors


def make_row(
    tool: Tool,
    stats: dict[str, tuple[float, float]],
    output: int,
    cpu_used: dict[str, float],
    rounds: int,
) -> Row:
    """One table row; a server's memory is read now, while it still runs."""
    median, p90 = stats[tool.name]
    medians = {name: s[0] for name, s in stats.items()}
    row = Row(
        tool.name,
        median,
        p90,
        ratio(median, medians.get(BARE)),
        ratio(medians.get(SUBJECT), median),
        f"{output} {tool.unit}",
    )
    if tool.server:
        row.cpu_s_per_scrape = cpu_used[tool.name] / rounds
        mem = status_kib(tool.server.pid, "VmRSS", "VmHWM")
        row.rss_kib, row.hwm_kib = mem.get("VmRSS"), mem.get("VmHWM")
    return row


def measure_size(
    idle: int, args: argparse.Namespace, configs: Configs, specs: Sequence[ServerSpec]
) -> SizeResult:
    with IdleProcesses(idle) as procs, ExitStack() as stack:
        log(
            f"N={idle}: {idle} idle processes up in {procs.spawn_seconds:.1f}s, "
            f"{procs.memory_bytes / 2**20:.0f} MiB"
        )
        tools, skipped, errors = start_servers(stack, specs, args.timeout)
        in_process = in_process_exporter(configs.procpilot_by_comm)
        tools += [
            Tool(BARE, bare_stat_loop, "procs"),
            Tool("psutil.process_iter", psutil_pass, "procs"),
            Tool("ProcReader.snapshot", snapshotter(), "procs"),
            Tool(IN_PROCESS, lambda: count_series(in_process()), "series"),
        ]
        procs_seen = bare_stat_loop()
        run_rounds(tools, args.warmup, "warm-up")
        cpu_before, started = cpu_marks(tools), time.monotonic()
        times, outputs = run_rounds(tools, args.rounds, "measured")
        cpu_after, wall = cpu_marks(tools), time.monotonic() - started
        stats = summarize(times)
        cpu_used = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
        rows = [make_row(t, stats, outputs[t.name], cpu_used, args.rounds) for t in tools]
        profiled = profile(in_process, args.profile) if args.profile else ""
    medians = {name: s[0] for name, s in stats.items()}
    rss = {r.tool: r.rss_kib for r in rows}
    return SizeResult(
        idle,
        procs_seen,
        procs.spawn_seconds,
        procs.memory_bytes,
        rows,
        [t for name in GOALS for t in check_targets(medians, name, rss.get(name))],
        skipped,
        errors,
        background_cores(cpu_used, wall),
        profiled,
    )


@dataclass
class ExitsResult:
    rate: float  # processes started (and ended) per second
    seconds: float  # how long the generator ran
    burn_ms: float
    listening: bool  # taskstats was available: without it nothing below is credited
    children: int = 0
    children_cpu_s: float = 0.0  # getrusage(RUSAGE_CHILDREN) of the generator
    credited_exits: int = 0
    credited_cpu_s: float = 0.0
    lost: dict[str, float] = field(default_factory=dict)
    exporter_cores: float = 0.0  # CPU the exporter used over the phase, per wall second
    exporter_rss_kib: int | None = None
    scrapes: int = 0


def group_totals(port: int, timeout: float) -> tuple[float, float, dict[str, float], bool]:
    """(CPU seconds, exits credited, exits lost by reason, listening) of the exits group."""
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(scrape(port, timeout=timeout)[1].decode()):
        for sample in family.samples:
            values[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    cpu = sum(values.get(("procpilot_group_cpu_seconds_total",
                          (("group", "exits"), ("mode", mode))), 0.0)
              for mode in ("user", "system"))
    credited = values.get(("procpilot_exporter_taskstats_exits_total",
                           (("result", "grouped"),)), 0.0)
    lost = {labels[0][1]: v for (name, labels), v in values.items()
            if name == "procpilot_exporter_taskstats_lost_total"}
    listening = values.get(("procpilot_exporter_taskstats_listening", ()), 0.0) == 1
    return cpu, credited, lost, listening


def measure_exits(args: argparse.Namespace, config_dir: str, binary: str) -> ExitsResult:
    """procpilot-exporter while _exit_burst.py ends args.exits_per_second processes a second."""
    config_file = os.path.join(config_dir, "exits.yml")
    with open(config_file, "w") as f:
        f.write(EXITS_CONFIG)
    port = free_port()
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", f"--config.file={config_file}"]
    result = ExitsResult(args.exits_per_second, args.exits_seconds, args.exit_burn_ms, False)
    with Server(SUBJECT, argv, port) as server:
        server.wait_ready(timeout=args.timeout)
        cpu_before, credited_before, lost_before, result.listening = group_totals(
            port, args.timeout)
        if not result.listening:
            return result
        log(f"exits: {args.exits_per_second:g}/s for {args.exits_seconds:g}s")
        exporter_cpu, started = cpu_seconds(server.pid), time.monotonic()
        burst = subprocess.Popen(
            [sys.executable, "-I", "-S", EXIT_BURST, str(args.exits_per_second),
             str(args.exits_seconds), str(args.exit_burn_ms)], stdout=subprocess.PIPE, text=True)
        while burst.poll() is None:
            time.sleep(5.0)
            group_totals(port, args.timeout)
            result.scrapes += 1
        assert burst.stdout is not None
        children, children_cpu, _ = burst.stdout.read().split()
        time.sleep(2.0)  # the listener has read the last records by then
        cpu_after, credited_after, lost_after, _ = group_totals(port, args.timeout)
        result.scrapes += 1
        result.exporter_cores = (cpu_seconds(server.pid) - exporter_cpu) / (
            time.monotonic() - started)
        result.exporter_rss_kib = status_kib(server.pid, "VmRSS").get("VmRSS")
    result.children, result.children_cpu_s = int(children), float(children_cpu)
    result.credited_exits = int(credited_after - credited_before)
    result.credited_cpu_s = cpu_after - cpu_before
    result.lost = {k: v - lost_before.get(k, 0.0) for k, v in lost_after.items()}
    return result


def format_exits(r: ExitsResult) -> str:
    head = (f"taskstats: {r.rate:g} processes a second for {r.seconds:g} s, each burning "
            f"about {r.burn_ms:g} ms of CPU, procpilot scraped every 5 s")
    if not r.listening:
        return f"{head}\n  taskstats unavailable (not root, or Linux older than 5.19)"
    share = r.credited_exits / r.children if r.children else 0.0
    cpu_share = r.credited_cpu_s / r.children_cpu_s if r.children_cpu_s else 0.0
    lost = ", ".join(f"{k} {v:g}" for k, v in sorted(r.lost.items())) or "none"
    rss = "-" if r.exporter_rss_kib is None else f"{r.exporter_rss_kib / 1024:.1f} MiB"
    return "\n".join([
        head,
        f"  exits credited to the group: {r.credited_exits} of {r.children} ({share:.1%}); "
        f"lost: {lost}",
        f"  CPU credited: {r.credited_cpu_s:.2f} s of the {r.children_cpu_s:.2f} s getrusage "
        f"counts ({cpu_share:.1%}); process-exporter and node_exporter: 0 (never scraped)",
        f"  exporter: {r.exporter_cores:.3f} cores over the phase (listener and "
        f"{r.scrapes} scrapes), RSS {rss}",
    ])


# --- output ----------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(result: SizeResult) -> str:
    head = (
        f"N = {result.idle} idle processes ({result.procs_seen} in /proc; "
        f"they cost {result.idle_memory_bytes / 2**20:.0f} MiB, "
        f"{result.idle_memory_bytes / max(result.idle, 1) / 1024:.0f} KiB each; "
        f"other programs busy {result.background_cores:.2f} cores meanwhile)"
    )
    columns = (
        "tool", "median s", "p90 s", "x bare", "procpilot/x", "cpu s/scrape",
        "RSS MiB", "HWM MiB", "output",
    )  # fmt: skip
    lines = [
        (
            r.tool,
            f"{r.median_s:.3f}",
            f"{r.p90_s:.3f}",
            _fmt(r.vs_bare, ".2f"),
            _fmt(r.subject_vs_this, ".2f"),
            _fmt(r.cpu_s_per_scrape, ".3f"),
            _fmt(None if r.rss_kib is None else r.rss_kib / 1024, ".1f"),
            _fmt(None if r.hwm_kib is None else r.hwm_kib / 1024, ".1f"),
            r.output,
        )
        for r in result.rows
    ]
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(columns)]
    out = [head, ""]
    for cells in [columns, tuple("-" * w for w in widths), *lines]:
        out.append(
            "  ".join(
                c.ljust(w) if i in (0, len(widths) - 1) else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )
    out += ["", "targets (set for 10,000 processes):"]
    for t in result.targets:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t.met]
        out.append(f"  {t.subject}: {t.goal}: {verdict} ({t.detail})")
    out += [f"skipped {s}" for s in result.skipped]
    out += [f"ERROR {e}" for e in result.errors]
    if result.profile:
        out += ["", "profile of in-process scrapes (by own time):", result.profile]
    return "\n".join(out)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--sizes",
        default="2000,10000",
        type=lambda s: [int(x) for x in s.split(",")],
        help="idle process counts to measure at, comma-separated (default 2000,10000)",
    )
    p.add_argument("--rounds", type=int, default=15, help="measured rounds (default 15)")
    p.add_argument("--warmup", type=int, default=2, help="rounds run first, not counted")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per scrape / start")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--exits-per-second", type=float, default=0.0,
                   help="processes started and ended per second in the exits phase (0: skip)")
    p.add_argument("--exits-seconds", type=float, default=30.0, help="length of that phase")
    p.add_argument("--exit-burn-ms", type=float, default=1.0,
                   help="CPU each of those processes burns before it exits")
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="K",
        help="after the rounds, cProfile K in-process scrapes per size and print the top",
    )
    args = p.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0 or min(args.sizes) < 1:
        p.error("--rounds and --sizes must be positive, --warmup not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # A polite kill unwinds like Ctrl-C, so every `with` stops its servers and processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with tempfile.TemporaryDirectory(prefix="bench-exporter-") as config_dir:
        configs = write_configs(config_dir)
        specs = server_specs(configs)
        results = [measure_size(n, args, configs, specs) for n in args.sizes]
        subject = specs[0].binary
        exits = (measure_exits(args, config_dir, subject)
                 if args.exits_per_second > 0 and subject else None)
    versions = {s.name: tool_version(s.binary) for s in specs if s.binary}
    env = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rounds": args.rounds,
        "warmup": args.warmup,
        "versions": versions,
    }
    if args.json:
        print(json.dumps({"env": env, "sizes": [asdict(r) for r in results],
                          "exits": exits and asdict(exits)}, indent=2))
    else:
        print(
            f"{env['cpus']} CPUs, Linux {env['kernel']}, Python {env['python']}, "
            f"{args.rounds} rounds after {args.warmup} warm-up"
        )
        print("; ".join(f"{k}: {v}" for k, v in versions.items()) + "\n")
        print("\n\n".join(format_table(r) for r in results))
        if exits is not None:
            print("\n" + format_exits(exits))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything is stopped by now; no traceback for a Ctrl-C
        sys.exit(128 + signal.SIGINT)
