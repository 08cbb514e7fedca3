"""Per-program limits and the isolation section: parsing, refusals, and how they reach the
process (the rlimit/umask prefix)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from procpilot.controller.config import ConfigError, ControllerConfig, parse
from procpilot.controller.confinement import Confinement


def limits(**given: Any) -> Any:
    return parse({"programs": {"x": {"command": "true", "limits": given}}}, "c.yaml") \
        .programs["x"].limits


def test_values_are_normalised() -> None:
    lim = limits(memory="100MiB", memory_high="80MiB", swap=0, cpu="50%", tasks=20,
                 nofile=1024, core="unlimited", umask="027")
    assert (lim.memory, lim.memory_high, lim.swap, lim.cpu) == (100 << 20, 80 << 20, 0, 0.5)
    assert (lim.tasks, lim.nofile, lim.core, lim.umask) == (20, 1024, "unlimited", 0o27)
    assert limits(cpu=1.5, core="1MiB").core == 1 << 20
    assert limits(cpu="1%").cpu == limits(cpu=0.01).cpu == 0.01  # the smallest cpu limit


@pytest.mark.parametrize(("given", "message"), [
    ({"umask": 27}, "octal umask as a string"),
    ({"umask": "0o27"}, "octal umask as a string"),
    ({"cpu": 0}, "0 cores: expected a finite number of cores, at least 0.01"),
    ({"cpu": "inf"}, "inf cores: expected a finite number of cores, at least 0.01"),
    ({"cpu": "inf%"}, "inf cores: expected a finite number"),
    ({"cpu": 1e400}, "inf cores: expected a finite number"),
    ({"cpu": "1e400"}, "inf cores: expected a finite number"),
    ({"cpu": 0.001}, r"0.001 cores: .*at least 0.01 \(the kernel's smallest CPU quota is 1 ms"),
    ({"cpu": "0.5%"}, "0.005 cores: .*at least 0.01"),
    ({"tasks": 0}, "greater than or equal to 1"),
    ({"swap": "1GiB"}, "swap needs memory"),
    ({"memory": "1MiB", "memory_high": "2MiB"}, "memory_high .* is above memory"),
    ({"core": "lots"}, "expected a size"),
])
def test_refusals_name_the_key(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=rf"programs\.x\.limits.*{message}"):
        limits(**given)


def test_isolation_section() -> None:
    assert ControllerConfig().isolation.backend == "auto"
    cfg = parse({"isolation": {"backend": "cgroup1", "root": "/procpilot.slice"}}, "c.yaml")
    assert (cfg.isolation.backend, cfg.isolation.root) == ("cgroup1", "/procpilot.slice")
    for bad in ({"backend": "lxc"}, {"root": "relative"}):
        with pytest.raises(ConfigError, match="isolation"):
            parse({"isolation": bad}, "c.yaml")


def test_the_process_prefix_sets_rlimits_and_umask_then_execs() -> None:
    prefix = Confinement("x-0", nofile=64, core=1000, umask=0o27).argv()
    report = "ulimit -n; ulimit -Hn; ulimit -c; umask"
    out = subprocess.run([*prefix, "/bin/sh", "-c", report], capture_output=True, text=True,
                         check=True, timeout=30).stdout.split()
    assert out == ["64", "64", "2", "0027"]  # 1000 bytes round up to two 512-byte blocks
    assert Confinement("x-0").argv() == []


@pytest.mark.parametrize(("program", "message"), [
    ({"instances": 1_000_000}, r"programs\.x\.instances.*less than or equal to 10000"),
    ({"autoscale": {"max": 20_000, "cpu_target": 1}},
     r"programs\.x\.autoscale\.max.*less than or equal to 10000"),
    ({"limits": {"check_interval": "1ms"}},
     r"programs\.x\.limits\.check_interval.*greater than or equal to 0\.1"),
])
def test_counts_and_check_intervals_are_bounded(program: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse({"programs": {"x": {"command": "true", **program}}}, "c.yaml")
