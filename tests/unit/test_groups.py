"""The groups collector on fixture procfs trees: every family's number, children, owner
templates, reloads, caps, and exits credited from a fake taskstats source."""

from __future__ import annotations

import os
from collections.abc import Container
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from procpilot.core.procfs import FS, ProcReader
from procpilot.core.taskstats import TaskExit
from procpilot.exporter import config
from procpilot.exporter import exits as listener_module
from procpilot.exporter.collectors import Caps, Shared
from procpilot.exporter.collectors import exits as exits_module
from procpilot.exporter.collectors import groups as groups_module
from procpilot.exporter.exits import Batch, ExitListener, ProcessExit
from procpilot.exporter.scrape import ScrapeCollector
from tests.support.fakeproc import BTIME, Extra, FakeProcfs
from tests.unit.test_collectors import group_cfg, make, samples

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def of(got: Samples, metric: str, **labels: str) -> float | None:
    return got.get((metric, tuple(sorted(labels.items()))))


def by_group(got: Samples, metric: str) -> dict[str, float]:
    return {dict(k[1])["group"]: v for k, v in got.items() if k[0] == metric}


def test_every_family_of_a_group(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"db", state="S", minflt=100, majflt=3, vsize=5000, utime=50, stime=10,
             extra=Extra(swap_kb=8, voluntary=40, involuntary=2, read_bytes=4096,
                         write_bytes=512, fds=100, nofile=1000, pss_kb=30, swap_pss_kb=4))
    fake.add(11, b"db", state="R", minflt=1, majflt=0, vsize=7000,
             extra=Extra(swap_kb=2, voluntary=1, involuntary=1, fds=900, nofile=1000,
                         pss_kb=10))
    fake.add(12, b"db", state="Z")
    groups = make("groups", group_cfg({"name": "db", "comm": ["db"], "pss": True}))
    got = samples(list(groups.collect(ProcReader(FS.at(str(tmp_path))).snapshot())))
    assert of(got, "procpilot_group_virtual_memory_bytes", group="db") == 5000 + 7000 + 1_000_000
    assert of(got, "procpilot_group_swap_bytes", group="db") == 10 * 1024
    assert of(got, "procpilot_group_proportional_resident_memory_bytes", group="db") == 40 * 1024
    assert of(got, "procpilot_group_proportional_swap_bytes", group="db") == 4 * 1024
    assert of(got, "procpilot_group_read_bytes_total", group="db") == 4096
    assert of(got, "procpilot_group_write_bytes_total", group="db") == 512
    assert of(got, "procpilot_group_minor_page_faults_total", group="db") == 101
    assert of(got, "procpilot_group_major_page_faults_total", group="db") == 3
    switches = "procpilot_group_context_switches_total"
    assert of(got, switches, group="db", type="voluntary") == 41
    assert of(got, switches, group="db", type="involuntary") == 3
    assert of(got, "procpilot_group_open_fds", group="db") == 1000  # the zombie has none
    assert of(got, "procpilot_group_worst_fd_ratio", group="db") == 0.9
    states = {dict(k[1])["state"]: v for k, v in got.items()
              if k[0] == "procpilot_group_process_states"}
    assert states == {"running": 1, "sleeping": 1, "disk_sleep": 0, "stopped": 0,
                      "tracing_stop": 0, "zombie": 1, "dead": 0, "idle": 0, "other": 0}
    assert of(got, "procpilot_group_cpu_seconds_total", group="db", mode="user") == 50 / TICKS


def test_options_switched_off_read_nothing_and_export_nothing(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    d = fake.add(10, b"db")
    for name in ("status", "io", "limits", "smaps_rollup"):
        (d / name).unlink()
    shared = Shared()
    cfg = group_cfg({"name": "db", "comm": ["db"], "swap": False, "context_switches": False,
                     "io": False, "fds": False})
    snap = ProcReader(FS.at(str(tmp_path))).snapshot()
    got = samples(list(make("groups", cfg, shared).collect(snap)))
    names = {k[0] for k in got if dict(k[1]).get("group") == "db"}
    assert names == {
        "procpilot_group_processes", "procpilot_group_resident_memory_bytes",
        "procpilot_group_virtual_memory_bytes", "procpilot_group_threads",
        "procpilot_group_oldest_start_time_seconds", "procpilot_group_process_states",
        "procpilot_group_cpu_seconds_total", "procpilot_group_minor_page_faults_total",
        "procpilot_group_major_page_faults_total"}
    assert snap.errors.counts() == {"vanished": 0, "permission": 0, "parse": 0}


def test_children_join_the_group_of_their_nearest_grouped_ancestor(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(1, b"init", ppid=0)
    fake.add(10, b"make", ppid=1)  # children: true
    fake.add(11, b"sh", ppid=10)  # joins build
    fake.add(12, b"cc1", ppid=11)  # joins build through sh
    fake.add(13, b"git", ppid=10)  # has a group of its own, without children
    fake.add(14, b"ssh", ppid=13)  # so this one is in no group
    fake.add(20, b"cron", ppid=1)  # a group without children
    fake.add(21, b"sh", ppid=20)
    cfg = group_cfg({"name": "build", "comm": ["make"], "children": True},
                    {"name": "vcs", "comm": ["git"]}, {"name": "cron", "comm": ["cron"]})
    got = samples(list(make("groups", cfg).collect(ProcReader(FS.at(str(tmp_path))).snapshot())))
    assert by_group(got, "procpilot_group_processes") == {"build": 3, "vcs": 1, "cron": 1}


def test_owner_fields_in_templates_and_fields_without_value(tmp_path: Path) -> None:
    container = "ab" * 32
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"nginx", extra=Extra(cgroup="0::/system.slice/nginx.service\n"))
    fake.add(11, b"app", extra=Extra(cgroup=f"0::/system.slice/docker-{container}.scope\n"))
    fake.add(12, b"web", extra=Extra(
        cgroup="0::/system.slice/ctl.service/procpilot-%2Frun%2Fctl.sock/web-0-1\n"))
    fake.add(13, b"stray")  # in the root cgroup: no unit, container or program
    cfg = group_cfg({"name": "ctl-{program}", "cmdline": ".*"},
                    {"name": "ct-{container}", "cmdline": ".*"},
                    {"name": "{unit}", "cmdline": ".*"},
                    {"name": "other:{cgroup}", "cmdline": ".*"})
    got = samples(list(make("groups", cfg).collect(ProcReader(FS.at(str(tmp_path))).snapshot())))
    assert by_group(got, "procpilot_group_processes") == {
        "ctl-web": 1, f"ct-{container}": 1, "nginx.service": 1, "other:/": 1}


def test_counters_survive_a_reload(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"w", utime=100, minflt=10)
    fake.add(11, b"x", utime=300)
    reader = ProcReader(FS.at(str(tmp_path)))
    cpu = "procpilot_group_cpu_seconds_total"
    groups = make("groups", group_cfg({"name": "w", "comm": ["w"]},
                                      {"name": "{comm}", "comm": ["x"]},
                                      {"name": "gone", "comm": ["nothing"]}))
    groups.collect(reader.snapshot())
    list(groups.collect(reader.snapshot()))
    fake.add(10, b"w", utime=150, minflt=12)
    groups.configure(group_cfg({"name": "w", "comm": ["w"]}, {"name": "{comm}", "comm": ["x"]},
                               {"name": "new", "comm": ["y"]}))
    got = samples(list(groups.collect(reader.snapshot())))
    assert of(got, cpu, group="w", mode="user") == 150 / TICKS  # not 50, not 250
    assert of(got, "procpilot_group_minor_page_faults_total", group="w") == 12
    assert of(got, cpu, group="x", mode="user") == 300 / TICKS  # a templated name, kept
    assert of(got, cpu, group="new", mode="user") == 0
    assert of(got, cpu, group="gone", mode="user") is None


def test_long_label_values_are_cut_and_stay_distinct(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"java", cmdline=b"a" * 30_000 + b"1\0")
    fake.add(11, b"java", cmdline=b"a" * 30_000 + b"2\0")
    shared = Shared(Caps(label_limit=64))  # max_label_length: 64, as ScrapeCollector sets it
    cfg = group_cfg({"name": "{arg}", "cmdline": "(?P<arg>.*)"})
    got = samples(list(make("groups", cfg, shared).collect(
        ProcReader(FS.at(str(tmp_path))).snapshot())))
    names = by_group(got, "procpilot_group_processes")
    assert len(names) == 2
    assert all(len(name) == 64 and name[47] == "~" for name in names)
    assert shared.caps.truncated == 2


def test_a_scrape_is_capped_at_max_scrape_series(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    for pid in range(10, 60):
        fake.add(pid, b"p%d" % pid)
    cfg = group_cfg({"name": "{comm}", "cmdline": ".*"}, max_scrape_series=200)
    registry = CollectorRegistry()
    scrape = ScrapeCollector(ProcReader(FS.at(str(tmp_path))), cfg, ["summary", "groups"])
    registry.register(scrape)
    text = generate_latest(registry).decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    own = [line for line in lines if line.startswith("procpilot_exporter_")]
    assert len(lines) - len(own) == 200
    assert 'procpilot_exporter_series_dropped_total{reason="max_scrape_series"}' in text
    assert scrape.shared.caps.dropped["max_scrape_series"] > 0


def test_reload_results_are_exported(tmp_path: Path) -> None:
    FakeProcfs(tmp_path)
    registry = CollectorRegistry()
    scrape = ScrapeCollector(ProcReader(FS.at(str(tmp_path))), config.ExporterConfig(), [])
    registry.register(scrape)
    scrape.reloads.record(ok=False)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("procpilot_exporter_config_last_reload_successful") == 0
    assert value("procpilot_exporter_config_reloads_total", result="failure") == 1
    started = value("procpilot_exporter_config_last_reload_success_timestamp_seconds")
    scrape.reloads.record(ok=True)
    assert value("procpilot_exporter_config_last_reload_successful") == 1
    assert value("procpilot_exporter_config_reloads_total", result="success") == 1
    assert (value("procpilot_exporter_config_last_reload_success_timestamp_seconds") or 0) >= (
        started or 0)


# --- exits from taskstats ------------------------------------------------------------------


class FakeExits:
    listening = True

    def __init__(self) -> None:
        self.pending: list[ProcessExit] = []

    def take(self, alive: Container[int]) -> Batch:
        pending, self.pending = self.pending, []
        return Batch(pending, 0, 0)


def ended(pid: int, comm: str, start_ticks: int, *, ppid: int = 1, user: float = 0.0,
          runtime: float = 0.0, read: int = 0) -> ProcessExit:
    return ProcessExit(pid, start_ticks / TICKS, comm, ppid, 0, user, 0.0, runtime,
                       0, 0, 0, 0, read, 0)


@pytest.fixture
def tree(tmp_path: Path) -> FakeProcfs:
    fake = FakeProcfs(tmp_path)
    fake.add(1, b"init", ppid=0)
    fake.add(10, b"make", ppid=1, utime=100, start=1000)
    return fake


def test_exits_credit_what_no_scrape_counted(tree: FakeProcfs) -> None:
    exits = FakeExits()
    shared = Shared(exits=exits)
    groups = make("groups", group_cfg({"name": "build", "comm": ["make"], "children": True},
                                      {"name": "cc", "comm": ["cc1"]}), shared)
    reader = ProcReader(FS.at(str(tree.root)))
    cpu = "procpilot_group_cpu_seconds_total"
    first = samples(list(groups.collect(reader.snapshot())))
    assert of(first, cpu, group="build", mode="user") == 1.0
    now_ticks = 1000 + 100 * TICKS  # 100 s after make started
    exits.pending = [
        ended(30, "cc1", now_ticks, ppid=11, user=0.25),  # by comm
        ended(11, "sh", now_ticks, ppid=10, user=0.5, read=4096),  # child of make
        ended(12, "sed", now_ticks, ppid=11, user=0.125),  # child of sh, ended too
        ended(13, "ls", 5, user=7.0),  # in no group
    ]
    got = samples(list(groups.collect(reader.snapshot())))
    assert of(got, cpu, group="cc", mode="user") == 0.25
    assert of(got, cpu, group="build", mode="user") == 1.0 + 0.5 + 0.125
    assert of(got, "procpilot_group_read_bytes_total", group="build") == 4096
    assert shared.exit_counts.results == {"grouped": 3, "ungrouped": 1, "unattributed": 0}


def test_a_seen_member_adds_only_what_it_used_after_its_last_scrape(tree: FakeProcfs) -> None:
    exits = FakeExits()
    groups = make("groups", group_cfg({"name": "build", "comm": ["make"]}), Shared(exits=exits))
    reader = ProcReader(FS.at(str(tree.root)))
    list(groups.collect(reader.snapshot()))  # make: 1 s of user CPU seen
    tree.add(10, b"make", ppid=1, utime=180, start=1000, state="Z")  # a zombie: not counted
    list(groups.collect(reader.snapshot()))
    tree.remove(10)
    # 2 s exactly, sampled as 1.5 s user and 0.5 s system: 1 s more, split 3:1.
    exits.pending = [ended(10, "make", 1000, user=1.5, runtime=2.0)._replace(system=0.5)]
    got = samples(list(groups.collect(reader.snapshot())))
    cpu = "procpilot_group_cpu_seconds_total"
    assert of(got, cpu, group="build", mode="user") == 1.0 + 0.75
    assert of(got, cpu, group="build", mode="system") == 0.25


def test_exits_reported_late_still_find_what_scrapes_saw(tree: FakeProcfs) -> None:
    """Scrapes in quick succession (two Prometheus servers, say) do not make the exporter
    forget a process it saw: an exit reported three scrapes later adds only the rest."""
    exits = FakeExits()
    groups = make("groups", group_cfg({"name": "build", "comm": ["make"]}), Shared(exits=exits))
    reader = ProcReader(FS.at(str(tree.root)))
    list(groups.collect(reader.snapshot()))  # make seen with 1 s of user CPU
    tree.remove(10)
    for _ in range(3):
        list(groups.collect(reader.snapshot()))
    exits.pending = [ended(10, "make", 1000, user=1.25)]
    got = samples(list(groups.collect(reader.snapshot())))
    assert of(got, "procpilot_group_cpu_seconds_total", group="build", mode="user") == 1.25


def test_an_exit_a_forgotten_scrape_may_have_counted_is_left_out(
        tree: FakeProcfs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exits_module, "RETENTION", 0.0)  # forget at the second scrape
    exits = FakeExits()
    shared = Shared(exits=exits)
    groups = make("groups", group_cfg({"name": "build", "comm": ["make"]}), shared)
    reader = ProcReader(FS.at(str(tree.root)))
    list(groups.collect(reader.snapshot()))  # make seen: 1 s counted
    tree.remove(10)
    for _ in range(2):
        list(groups.collect(reader.snapshot()))
    exits.pending = [ended(10, "make", 1000, user=1.25)]
    got = samples(list(groups.collect(reader.snapshot())))
    assert of(got, "procpilot_group_cpu_seconds_total", group="build", mode="user") == 1.0
    assert shared.exit_counts.results["unattributed"] == 1


def test_an_exit_after_a_reload_is_matched_with_what_scrapes_saw(tree: FakeProcfs) -> None:
    exits = FakeExits()
    cfg = group_cfg({"name": "build", "comm": ["make"]}, {"name": "old", "comm": ["init"]})
    groups = make("groups", cfg, Shared(exits=exits))
    reader = ProcReader(FS.at(str(tree.root)))
    list(groups.collect(reader.snapshot()))
    groups.configure(group_cfg({"name": "build", "comm": ["make"]}))  # "old" is gone
    tree.remove(10)
    tree.remove(1)
    exits.pending = [ended(10, "make", 1000, user=1.25), ended(1, "init", 100, user=9.0)]
    got = samples(list(groups.collect(reader.snapshot())))
    assert of(got, "procpilot_group_cpu_seconds_total", group="build", mode="user") == 1.25
    assert of(got, "procpilot_group_cpu_seconds_total", group="old", mode="user") is None


def test_a_process_whose_main_thread_exited_is_counted_until_its_exit_record(
        tree: FakeProcfs) -> None:
    """Its stat shows Z while its other threads run: scrapes count it, and its exit record
    adds only what it used after the last scrape."""
    exits = FakeExits()
    groups = make("groups", group_cfg({"name": "build", "comm": ["make"]}), Shared(exits=exits))
    reader = ProcReader(FS.at(str(tree.root)))
    list(groups.collect(reader.snapshot()))  # 1 s seen
    for utime in (200, 300, 400):  # more scrapes than the tracker's grace
        tree.add(10, b"make", ppid=1, utime=utime, start=1000, state="Z", threads=3)
        got = samples(list(groups.collect(reader.snapshot())))
        assert of(got, "procpilot_group_cpu_seconds_total", group="build",
                  mode="user") == utime / TICKS
    tree.remove(10)
    exits.pending = [ended(10, "make", 1000, user=5.0)]
    got = samples(list(groups.collect(reader.snapshot())))
    assert of(got, "procpilot_group_cpu_seconds_total", group="build", mode="user") == 5.0


def test_a_zombie_keeps_what_scrapes_counted_until_its_exit_record_comes(
        tree: FakeProcfs) -> None:
    exits = FakeExits()
    groups = make("groups", group_cfg({"name": "build", "comm": ["make"]}), Shared(exits=exits))
    reader = ProcReader(FS.at(str(tree.root)))
    list(groups.collect(reader.snapshot()))  # 1 s seen
    tree.add(10, b"make", ppid=1, utime=180, start=1000, state="Z")
    for _ in range(3):  # more scrapes than the tracker's grace before the record comes
        list(groups.collect(reader.snapshot()))
    exits.pending = [ended(10, "make", 1000, user=1.75)]
    got = samples(list(groups.collect(reader.snapshot())))
    assert of(got, "procpilot_group_cpu_seconds_total", group="build", mode="user") == 1.75


def test_a_reload_matches_children_with_the_new_config_only(tmp_path: Path) -> None:
    """The child may be read before its parent: it must not join the parent's group of the
    old config, whatever the order of /proc."""
    fake = FakeProcfs(tmp_path)
    fake.add(300, b"parent")
    fake.add(400, b"child", ppid=300)
    reader = ProcReader(FS.at(str(tmp_path)))

    def cfg(name: str) -> config.ExporterConfig:
        return group_cfg({"name": name, "comm": ["parent"], "children": True})

    groups = make("groups", cfg("old"))
    list(groups.collect(reader.snapshot()))
    groups.configure(cfg("new"))
    snap = reader.snapshot()
    snap.procs = dict(sorted(snap.procs.items(), reverse=True))  # the child first
    got = samples(list(groups.collect(snap)))
    assert by_group(got, "procpilot_group_processes") == {"new": 2}


def test_a_remembered_parent_credits_only_names_the_config_still_has(
        tree: FakeProcfs) -> None:
    exits = FakeExits()

    def cfg(name: str) -> config.ExporterConfig:
        return group_cfg({"name": name, "comm": ["make"], "children": True})

    shared = Shared(exits=exits)
    groups = make("groups", cfg("old"), shared)
    reader = ProcReader(FS.at(str(tree.root)))
    list(groups.collect(reader.snapshot()))  # make seen in "old"
    tree.remove(10)
    list(groups.collect(reader.snapshot()))  # make remembered
    groups.configure(cfg("new"))
    exits.pending = [ended(50, "cc", 1000 + 100 * TICKS, ppid=10, user=2.0)]
    list(groups.collect(reader.snapshot()))
    assert shared.exit_counts.results["ungrouped"] == 1
    got = samples(list(groups.collect(reader.snapshot())))
    assert by_group(got, "procpilot_group_processes") == {"new": 0}  # no "old" again


class FedListener(ExitListener):
    """The real listener's bookkeeping, fed records by the test instead of the kernel."""

    listening = True


def test_a_wall_clock_step_does_not_make_a_seen_process_count_twice(
        tree: FakeProcfs, monkeypatch: pytest.MonkeyPatch) -> None:
    wall_at_boot = float(BTIME)
    for module in (listener_module, exits_module):
        monkeypatch.setattr(module, "boot_offset", lambda: wall_at_boot, raising=False)
    exits = FedListener()
    groups = make("groups", group_cfg({"name": "build", "comm": ["make"]}), Shared(exits=exits))
    reader = ProcReader(FS.at(str(tree.root)))
    list(groups.collect(reader.snapshot()))  # make seen with 1 s of user CPU
    tree.remove(10)
    wall_at_boot += 30.0  # the wall clock is stepped 30 s ahead; make ends
    start = wall_at_boot + 1000 / TICKS  # its start as the kernel's record tells it
    exits._add(TaskExit(10, 10, True, "make", 1, 0, start, 1.25, 0.0, 0.0, 0, 0, 0, 0, 0, 0,
                        False))
    got = samples(list(groups.collect(reader.snapshot())))
    assert of(got, "procpilot_group_cpu_seconds_total", group="build", mode="user") == 1.25


def test_max_groups_caps_only_names_made_by_templates(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"a")
    fake.add(11, b"b")
    cfg = group_cfg({"name": "s1", "comm": ["x"]}, {"name": "s2", "comm": ["y"]},
                    {"name": "t-{comm}", "comm": ["a", "b"]}, max_groups=2)
    got = samples(list(make("groups", cfg).collect(ProcReader(FS.at(str(tmp_path))).snapshot())))
    assert by_group(got, "procpilot_group_processes") == {"s1": 0, "s2": 0, "t-a": 1, "t-b": 1}


def test_idle_names_made_by_templates_go_and_make_room(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(groups_module, "IDLE_NAME_EXPIRY", 0.0, raising=False)  # idle: gone
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"a")
    fake.add(11, b"b")
    shared = Shared()
    groups = make("groups", group_cfg({"name": "static", "comm": ["x"]},
                                      {"name": "job-{comm}", "comm": ["a", "b", "c"]},
                                      max_groups=2), shared)
    reader = ProcReader(FS.at(str(tmp_path)))

    def names() -> dict[str, float]:
        return by_group(samples(list(groups.collect(reader.snapshot()))),
                        "procpilot_group_processes")

    assert names() == {"static": 0, "job-a": 1, "job-b": 1}
    fake.remove(10)
    fake.remove(11)
    fake.add(12, b"c")
    assert names() == {"static": 0}  # c is over max_groups until a and b have gone
    assert shared.caps.dropped["max_groups"] == 1
    assert names() == {"static": 0, "job-c": 1}


def test_a_name_made_by_a_template_stays_while_briefly_idle(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    fake.add(10, b"a", utime=100)
    groups = make("groups", group_cfg({"name": "job-{comm}", "comm": ["a"]}))
    reader = ProcReader(FS.at(str(tmp_path)))
    list(groups.collect(reader.snapshot()))
    fake.remove(10)
    got = samples(list(groups.collect(reader.snapshot())))
    assert of(got, "procpilot_group_processes", group="job-a") == 0
    assert of(got, "procpilot_group_cpu_seconds_total", group="job-a", mode="user") == 1.0


def test_taskstats_counts_are_exported_whatever_max_scrape_series_cuts(tree: FakeProcfs) -> None:
    """They are the exporter's own metrics, like the caps' counts."""
    cfg = group_cfg({"name": "{comm}", "cmdline": ".*"}, max_scrape_series=5)
    scrape = ScrapeCollector(ProcReader(FS.at(str(tree.root))), cfg, ["groups"], FedListener())
    registry = CollectorRegistry()
    registry.register(scrape)
    text = generate_latest(registry).decode()
    assert 'procpilot_exporter_taskstats_exits_total{result="grouped"} 0.0' in text
    assert 'procpilot_exporter_taskstats_lost_total{reason="socket"} 0.0' in text
    assert scrape.shared.caps.dropped["max_scrape_series"] > 0


def test_a_process_whose_main_thread_exited_is_read_without_errors(tmp_path: Path) -> None:
    fake = FakeProcfs(tmp_path)
    d = fake.add(10, b"db", state="Z", threads=3, extra=Extra(read_bytes=4096))
    (d / "smaps_rollup").unlink()  # the kernel answers ESRCH: no address space to show
    snap = ProcReader(FS.at(str(tmp_path))).snapshot()
    got = samples(list(make("groups", group_cfg({"name": "db", "comm": ["db"], "pss": True}))
                       .collect(snap)))
    assert of(got, "procpilot_group_read_bytes_total", group="db") == 4096
    assert snap.errors.counts() == {"vanished": 0, "permission": 0, "parse": 0}
