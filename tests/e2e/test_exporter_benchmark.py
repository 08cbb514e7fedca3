"""The exporter benchmark's own machinery: idle processes, summaries, a tiny full run."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import exporter_scrape as es  # noqa: E402
from _common import percentile  # noqa: E402
from idle_procs import IdleProcesses, _group_members  # noqa: E402


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def alive(pgids: set[int]) -> int:
    return len(_group_members(pgids))


def test_idle_processes_exist_while_held_and_are_gone_after() -> None:
    with IdleProcesses(35, per_parent=10) as idle:
        pgids = {p.pid for p in idle.parents}
        assert len(pgids) == 4  # 11 + 11 + 11 + 2
        assert alive(pgids) == 35
        for pid in _group_members(pgids):
            with open(f"/proc/{pid}/comm") as f:
                assert f.read().strip() == "ppbench-idle"
    assert alive(pgids) == 0


def test_idle_processes_end_when_their_holder_is_killed() -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys, time
                sys.path.insert(0, {str(BENCH)!r})
                from idle_procs import IdleProcesses
                with IdleProcesses(25, per_parent=10) as idle:
                    print(*(p.pid for p in idle.parents), flush=True)
                    time.sleep(600)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    pgids = {int(p) for p in holder.stdout.readline().split()}
    assert alive(pgids) == 25
    holder.send_signal(signal.SIGKILL)  # no cleanup code runs: the pipe's EOF must do it
    holder.wait()
    wait_for(lambda: alive(pgids) == 0)


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == 5.0
    assert percentile(values, 1) == 1.0
    with pytest.raises(ValueError):
        percentile([], 90)


def test_count_series_skips_comments_and_blank_lines() -> None:
    body = b'# HELP a x\n# TYPE a gauge\na 1\na{b="c"} 2\n\n# EOF\n'
    assert es.count_series(body) == 2


def test_targets_judge_the_issue_goals() -> None:
    medians = {es.SUBJECT: 0.2, es.BARE: 0.15, es.NODE: 0.33, es.PROCESS_EXPORTER: 2.6}
    met = es.check_targets(medians, es.SUBJECT, subject_rss_kib=50 * 1024)
    assert [t.met for t in met] == [True, True, True, True]
    missed = es.check_targets({**medians, es.SUBJECT: 0.4}, es.SUBJECT, subject_rss_kib=70 * 1024)
    assert [t.met for t in missed] == [False, False, False, False]
    unknown = es.check_targets({es.BARE: 0.15}, es.SUBJECT, subject_rss_kib=None)
    assert [t.met for t in unknown] == [None, None, None, None]


def test_targets_of_grouping_every_process() -> None:
    medians = {es.BY_COMM: 1.0, es.BARE: 0.15, es.PROCESS_EXPORTER: 6.0}
    met = es.check_targets(medians, es.BY_COMM, subject_rss_kib=70 * 1024)
    assert [(t.goal, t.met) for t in met] == [
        (">= 5x faster than process-exporter", True), ("RSS < 80 MB", True)]
    missed = es.check_targets({**medians, es.BY_COMM: 1.5}, es.BY_COMM, 90 * 1024)
    assert [t.met for t in missed] == [False, False]


def test_exits_phase_reports_shares() -> None:
    r = es.ExitsResult(1000, 30, 1.0, True, children=30000, children_cpu_s=40.0,
                       credited_exits=29970, credited_cpu_s=38.0,
                       lost={"socket": 30.0, "capacity": 0.0}, exporter_cores=0.08,
                       exporter_rss_kib=40 * 1024, scrapes=7)
    text = es.format_exits(r)
    assert "29970 of 30000 (99.9%)" in text
    assert "(95.0%)" in text
    assert "unavailable" in es.format_exits(es.ExitsResult(1000, 30, 1.0, False))


@pytest.mark.skipif(
    not shutil.which("prometheus-node-exporter"), reason="prometheus-node-exporter missing"
)
def test_tiny_full_run_reports_every_tool() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / "exporter_scrape.py"), "--sizes", "20", "--rounds", "1",
         "--warmup", "0", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (size,) = json.loads(out.stdout)["sizes"]
    names = {r["tool"] for r in size["rows"]}
    assert {es.SUBJECT, es.BY_COMM, es.IN_PROCESS, es.NODE, es.BARE} <= names
    for row in size["rows"]:
        assert row["median_s"] > 0
        assert int(row["output"].split()[0]) > 0
        if row["tool"] in (es.SUBJECT, es.BY_COMM, es.NODE):
            assert row["rss_kib"] > 0
    assert size["procs_seen"] >= 20 + 1


def test_background_cores_leaves_out_our_own_cpu() -> None:
    used = {es.HOST: 10.0, es.SELF: 4.0, es.SUBJECT: 3.0}
    assert es.background_cores(used, wall=6.0) == pytest.approx(0.5)
    assert es.background_cores({es.HOST: 1.0, es.SELF: 2.0}, wall=1.0) == 0.0
    assert es.background_cores(used, wall=0.0) == 0.0
