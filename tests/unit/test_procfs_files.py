"""The small /proc file parsers: /proc/stat, /proc/vmstat, cmdline."""

from __future__ import annotations

import pytest

from procpilot.core.procfs.details import parse_cmdline
from procpilot.core.procfs.hoststat import parse_boot_time, parse_busy_seconds
from procpilot.core.procfs.vmstat import parse_oom_kills

STAT = b"""cpu  100 5 50 1000 20 3 2 1 0 0
cpu0 50 2 25 500 10 1 1 0 0 0
intr 12345 1 2 3
btime 1700000000
processes 42
"""


def test_boot_time_and_busy_seconds() -> None:
    assert parse_boot_time(STAT) == 1_700_000_000.0
    # user nice system irq softirq steal: 100+5+50+3+2+1 ticks; idle and iowait excluded
    assert parse_busy_seconds(STAT, 100) == pytest.approx(1.61)


def test_stat_without_btime_or_cpu_fields() -> None:
    with pytest.raises(ValueError):
        parse_boot_time(b"cpu 1 2 3 4\n")
    with pytest.raises(ValueError):
        parse_busy_seconds(b"cpu 1 2\n", 100)


def test_oom_kills() -> None:
    assert parse_oom_kills(b"nr_free_pages 5\noom_kill 7\nfoo 1\n") == 7
    assert parse_oom_kills(b"nr_free_pages 5\n") is None


def test_cmdline() -> None:
    assert parse_cmdline(b"sleep\x0010\x00") == ("sleep", "10")
    assert parse_cmdline(b"") == ()
    assert parse_cmdline(b"a\xff\x00") == ("a\ufffd",)
