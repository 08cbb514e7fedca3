"""cgroup file parsers, on literal file contents as the kernel writes them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from procpilot.core import cgroupfs
from procpilot.core.cgroupfs import Mount

MEMORY_EVENTS = b"low 0\nhigh 12\nmax 40\noom 3\noom_kill 2\noom_group_kill 0\n"
CPU_STAT_V2 = (b"usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
               b"core_sched.force_idle_usec 0\nnr_periods 50\nnr_throttled 20\n"
               b"throttled_usec 1500000\nnr_bursts 0\nburst_usec 0\n")
MOUNTINFO = """\
22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 22 0:38 /docker/abc /mnt/with\\040space ro,relatime - cgroup2 cgroup2 rw
"""


def test_memory_events() -> None:
    events = cgroupfs.parse_memory_events(MEMORY_EVENTS)
    assert events == cgroupfs.MemoryEvents(low=0, high=12, max=40, oom=3, oom_kill=2)


def test_cpu_stat_v2_in_seconds_with_and_without_the_cpu_controller() -> None:
    stat = cgroupfs.parse_cpu_stat(CPU_STAT_V2)
    assert (stat.usage_seconds, stat.user_seconds, stat.system_seconds) == (2.5, 2.0, 0.5)
    assert stat.throttling == cgroupfs.Throttling(50, 20, 1.5)
    bare = cgroupfs.parse_cpu_stat("usage_usec 10\nuser_usec 6\nsystem_usec 4\nnice_usec 0\n")
    assert bare.throttling is None
    assert bare.usage_seconds == 10e-6


def test_cpu_stat_v1_throttled_time_is_nanoseconds() -> None:
    text = "nr_periods 10\nnr_throttled 4\nthrottled_time 250000000\nnr_bursts 0\nburst_time 0\n"
    assert cgroupfs.parse_cpu_stat_v1(text) == cgroupfs.Throttling(10, 4, 0.25)


def test_cgroup_events() -> None:
    assert cgroupfs.parse_cgroup_events("populated 1\nfrozen 0\n") == (True, False)
    assert cgroupfs.parse_cgroup_events("populated 0\n") == (False, False)  # before 5.2


def test_oom_control() -> None:
    text = "oom_kill_disable 0\nunder_oom 1\noom_kill 7\n"
    assert cgroupfs.parse_oom_control(text) == cgroupfs.OomControl(False, True, 7)


def test_cpuacct() -> None:
    assert cgroupfs.parse_cpuacct_stat("user 250\nsystem 50\n", 100) == (2.5, 0.5)
    assert cgroupfs.parse_cpuacct_usage("1500000000\n") == 1.5


def test_single_values() -> None:
    assert cgroupfs.parse_procs(b"12\n345\n") == [12, 345]
    assert cgroupfs.parse_procs(b"") == []
    assert cgroupfs.parse_count(b"4096\n", "memory.current") == 4096
    assert cgroupfs.parse_max(b"max\n", "memory.max") is None
    assert cgroupfs.parse_max(b"104857600\n", "memory.max") == 104857600
    assert cgroupfs.parse_cpu_max("max 100000\n") == (None, 100000)
    assert cgroupfs.parse_cpu_max("25000 100000\n") == (25000, 100000)


def test_formats() -> None:
    assert cgroupfs.format_max(None) == "max"
    assert cgroupfs.format_max(1024) == "1024"
    assert cgroupfs.format_cpu_max(0.25, 100000) == "25000 100000"
    assert cgroupfs.format_cpu_max(None, 100000) == "max 100000"
    assert cgroupfs.cpu_quota(0.001, 100000) == 1000  # the kernel's minimum quota


@pytest.mark.parametrize(("parse", "data", "message"), [
    (cgroupfs.parse_memory_events, b"low 0\nhigh 1\n", "memory.events: missing max, oom, oom_kill"),
    (cgroupfs.parse_memory_events, b"low zero\n", "expected a non-negative integer"),
    (cgroupfs.parse_memory_events, b"low 0 1\n", "line 1: expected 'key value'"),
    (cgroupfs.parse_memory_events, b"\xff\xfe", "memory.events: not UTF-8"),
    (cgroupfs.parse_cpu_stat, b"usage_usec -5\nuser_usec 1\nsystem_usec 1\n", "non-negative"),
    (cgroupfs.parse_cpu_stat, b"usage_usec 1\nuser_usec 1\nsystem_usec 1\nnr_periods 1\n",
     "missing nr_throttled, throttled_usec"),
    (cgroupfs.parse_cgroup_events, b"frozen 0\n", "missing populated"),
    (cgroupfs.parse_oom_control, b"oom_kill_disable 0\nunder_oom 0\n", "missing oom_kill"),
    (cgroupfs.parse_procs, b"12\nabc\n", "cgroup.procs: expected a non-negative integer"),
    (cgroupfs.parse_cpu_max, b"max\n", "expected 'quota period'"),
    (cgroupfs.parse_proc_cgroup, b"memory:/x\n", "expected 'id:controllers:/path'"),
    (cgroupfs.parse_mountinfo, b"31 23 0:28 / /sys/fs/cgroup rw\n", "not a mountinfo line"),
])
def test_malformed_input_is_a_clear_value_error(parse: Callable[[bytes], object], data: bytes,
                                                message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(data)


def test_count_refuses_non_ascii_digits() -> None:
    with pytest.raises(ValueError):
        cgroupfs.parse_count("٣", "pids.current")


@given(st.binary(max_size=200))
def test_parsers_raise_only_value_error(data: bytes) -> None:
    for parse in (cgroupfs.parse_memory_events, cgroupfs.parse_cpu_stat,
                  cgroupfs.parse_cgroup_events, cgroupfs.parse_proc_cgroup,
                  cgroupfs.parse_mountinfo, cgroupfs.parse_procs, cgroupfs.parse_cpu_max):
        with contextlib.suppress(ValueError):
            parse(data)


def test_proc_cgroup_hybrid_and_pure_v2() -> None:
    hybrid = cgroupfs.parse_proc_cgroup(
        "9:name=systemd:/\n4:memory:/process_api/ab12\n1:cpu,cpuacct:/\n0::/\n")
    assert hybrid.unified == "/"
    assert hybrid.v1 == {"name=systemd": "/", "memory": "/process_api/ab12", "cpu": "/",
                         "cpuacct": "/"}
    pure = cgroupfs.parse_proc_cgroup("0::/system.slice/procpilot.service\n")
    assert pure == ("/system.slice/procpilot.service", {})
    # A cgroup name may hold ':'; only the first two separate fields.
    assert cgroupfs.parse_proc_cgroup("0::/a:b\n").unified == "/a:b"


def test_mountinfo_and_hierarchies() -> None:
    mounts = cgroupfs.parse_mountinfo(MOUNTINFO)
    assert len(mounts) == 7
    odd = mounts[-1]
    assert odd.mount_point == "/mnt/with space" and odd.root == "/docker/abc"
    assert not odd.writable
    found = cgroupfs.cgroup_hierarchies(mounts)
    assert found.unified is not None and found.unified.mount_point == "/sys/fs/cgroup/unified"
    assert sorted(found.v1) == ["cpu", "cpuacct", "memory"]  # name=systemd is no controller
    assert found.v1["cpu"] is found.v1["cpuacct"]


def test_cgroup_dir_maps_cgroup_paths_to_directories() -> None:
    def mount(root: str) -> Mount:
        return Mount(root, "/sys/fs/cgroup", frozenset({"rw"}), "cgroup2", frozenset({"rw"}))

    assert cgroupfs.cgroup_dir(mount("/"), "/") == "/sys/fs/cgroup"
    assert cgroupfs.cgroup_dir(mount("/"), "/a/b") == "/sys/fs/cgroup/a/b"
    assert cgroupfs.cgroup_dir(mount("/docker/abc"), "/docker/abc/x") == "/sys/fs/cgroup/x"
    assert cgroupfs.cgroup_dir(mount("/docker/abc"), "/docker/abcd") is None
    assert cgroupfs.cgroup_dir(mount("/"), "/../..") is None  # outside our cgroup namespace
