from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from procpilot.controller import config
from procpilot.controller.autoscale import Target
from procpilot.controller.autoscaleconfig import Autoscale
from procpilot.controller.config import ConfigError, ControllerConfig, ProgramConfig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "controller.yaml"


def load_text(tmp_path: Path, text: str) -> ControllerConfig:
    path = tmp_path / "controller.yaml"
    path.write_text(textwrap.dedent(text))
    return config.load(str(path))


def program(tmp_path: Path, body: str) -> ProgramConfig:
    text = "programs:\n  p:\n" + textwrap.indent(textwrap.dedent(body), "    ")
    return load_text(tmp_path, text).programs["p"]


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value)


def test_example_validates() -> None:
    cfg = config.load(str(EXAMPLE))
    assert set(cfg.programs) == {"web", "flaky", "workers"}
    pool = cfg.programs["workers"].autoscale
    assert pool is not None and pool.policy().max_workers == 4
    assert cfg.programs["web"].health is not None


def test_example_matches_shipped_json_schema() -> None:
    schema = json.loads((ROOT / "controller" / "config.schema.json").read_text())
    jsonschema.validate(yaml.safe_load(EXAMPLE.read_text()), schema)



def test_empty_file_means_defaults(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, "")
    assert cfg == ControllerConfig()
    assert cfg.control.socket == config.DEFAULT_SOCKET
    assert cfg.programs == {}


def test_program_defaults(tmp_path: Path) -> None:
    p = program(tmp_path, "command: [sleep, '10']\n")
    assert p.command == ("sleep", "10")
    assert (p.instances, p.priority, p.autostart, p.start_seconds) == (1, 100, True, 1.0)
    r = p.restart
    assert (r.policy, r.exit_codes, r.delay, r.factor, r.max_delay) == ("always", (0,), 0.5, 2, 60)
    assert (r.jitter, r.reset_after, r.max_restarts, r.window) == (0.1, 60, 10, 300)
    assert (p.stop.signal, p.stop.timeout) == (signal.SIGTERM, 10.0)
    assert (p.limits.memory, p.limits.check_interval) == (None, 1.0)
    assert p.logs is None and p.health is None and p.autoscale is None
    assert p.user is None and p.group is None and p.environment == {}


def test_values_are_normalised(tmp_path: Path) -> None:
    p = program(
        tmp_path,
        """
        command: python3 -c 'print("a b")'
        environment: {PORT: 8000, RATIO: 0.5, NAME: x}
        user: root
        group: "0"
        start_seconds: 1m30s
        restart: {delay: 250ms, max_delay: 1h, window: 90}
        stop: {signal: SIGINT, timeout: 1.5}
        limits: {memory: 1.5GiB}
        logs: {directory: /tmp, max_size: 1MB}
        health: {tcp: "[::1]:8080"}
        """,
    )
    assert p.command == ("python3", "-c", 'print("a b")')
    assert p.environment == {"PORT": "8000", "RATIO": "0.5", "NAME": "x"}
    assert (p.user, p.group) == (0, 0)
    assert p.start_seconds == 90.0
    assert (p.restart.delay, p.restart.max_delay, p.restart.window) == (0.25, 3600.0, 90.0)
    assert (p.stop.signal, p.stop.timeout) == (signal.SIGINT, 1.5)
    assert p.limits.memory == 3 * 1024**3 // 2
    assert p.logs is not None and p.logs.max_size == 10**6 and p.logs.backups == 5
    assert p.health is not None and p.health.tcp_address == ("::1", 8080)


@pytest.mark.parametrize(("given", "number"), [("TERM", 15), ("kill", 9), ("SIGHUP", 1), (2, 2)])
def test_signals(tmp_path: Path, given: object, number: int) -> None:
    p = program(tmp_path, f"command: [x]\nstop: {{signal: {given}}}\n")
    assert p.stop.signal == number


def test_shell_command(tmp_path: Path) -> None:
    p = program(tmp_path, "shell: true\ncommand: 'echo $HOME | wc -c'\n")
    assert p.command == ("/bin/sh", "-c", "echo $HOME | wc -c")


def test_command_list_numbers_become_strings(tmp_path: Path) -> None:
    assert program(tmp_path, "command: [sleep, 5]\n").command == ("sleep", "5")


def test_autoscale(tmp_path: Path) -> None:
    p = program(tmp_path, "command: [x]\nautoscale: {max: 3, cpu_target: 50%, interval: 10s}\n")
    a = p.autoscale
    assert a is not None
    assert (a.min, a.max, a.cpu_target, a.policy().warmup) == (1, 3, 0.5, 10.0)
    assert (a.metric, a.scale_up.max_step, a.scale_down.stabilization) == ("pool", 4, 300.0)
    q = program(tmp_path, "command: [x]\nautoscale: {min: 2, max: 3, cpu_target: 1.5, warmup: 1s}")
    b = q.autoscale
    assert b is not None
    policy = b.policy()
    assert (policy.min_workers, policy.targets, policy.warmup) == (
        2, (Target("cpu", "cpu", 1.5),), 1.0)


def test_autoscale_metrics(tmp_path: Path) -> None:
    p = program(tmp_path, """command: [x]
autoscale:
  min: 0
  max: 8
  metrics:
    - {type: cpu, target: 25%, source: system}
    - {type: memory, target: 256MiB}
    - {type: prometheus, server: "http://127.0.0.1:9090", query: sum(jobs), target: 10,
       activation: 2, fallback: 3, basic_auth: {username: u, password_file: /p}}
    - {type: http, name: depth, url: "http://127.0.0.1:9000/q", field: queue.depth, target: 5}
    - {type: command, command: "echo 3", target: 1, timeout: 2s}
""")
    a = p.autoscale
    assert a is not None
    assert a.policy().targets == (
        Target("cpu", "system", 0.25), Target("memory", "memory", float(256 << 20)),
        Target("prometheus", "total", 10.0, 2.0, 3), Target("depth", "total", 5.0),
        Target("command", "total", 1.0))
    assert sorted(a.totals()) == ["command", "depth", "prometheus"]


@pytest.mark.parametrize(("autoscale", "message"), [
    ("{max: 2}", "needs cpu_target or metrics"),
    ("{min: 0, max: 2, cpu_target: 1}", "min 0 needs a prometheus, http or command metric"),
    ("{max: 2, cpu_target: 1, metrics: [{type: cpu, target: 1}]}", "give the cpu target once"),
    ("{max: 2, metrics: [{type: http, url: 'http://a/', target: 1}, "
     "{type: http, url: 'http://b/', target: 1}]}", "metric names must differ"),
    ("{max: 2, metrics: [{type: http, url: 'ftp://a/', target: 1}]}", "http:// or https://"),
    ("{max: 2, metrics: [{type: redis, target: 1}]}", "does not match any of the expected tags"),
    ("{max: 2, metrics: [{type: http, url: 'http://a/', target: 0}]}", "greater than 0"),
    ("{max: 2, metrics: [{type: prometheus, server: 'http://a', query: q, target: 1, "
     "bearer_token_file: /t, basic_auth: {username: u, password_file: /p}}]}",
     "mutually exclusive"),
])
def test_autoscale_metric_errors(tmp_path: Path, autoscale: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        program(tmp_path, f"command: [x]\nautoscale: {autoscale}\n")


@given(
    st.fixed_dictionaries(
        {"max": st.integers(-1, 5), "cpu_target": st.floats(-1, 2) | st.just("0%") | st.none()},
        optional={
            "min": st.integers(-1, 5),
            "metrics": st.lists(st.fixed_dictionaries({
                "type": st.just("http"), "url": st.just("http://127.0.0.1/q"),
                "name": st.sampled_from(["a", "b"]), "target": st.floats(-1, 10),
                "activation": st.floats(-1, 3), "fallback": st.integers(-1, 6) | st.none()}),
                max_size=2),
            "tolerance": st.floats(-0.5, 1.5),
            "interval": st.floats(-1, 100),
            "warmup": st.floats(-1, 100) | st.none(),
            "scale_up": st.fixed_dictionaries(
                {"max_step": st.integers(-1, 5), "period": st.floats(-1, 30)}
            ),
            "scale_down": st.fixed_dictionaries({"stabilization": st.floats(-1, 600)}),
        },
    )
)
def test_every_valid_autoscale_is_a_valid_policy(raw: dict[str, object]) -> None:
    try:
        autoscale = Autoscale.model_validate(raw)
    except ValidationError:
        return
    autoscale.policy()  # the pure autoscaler's own checks must never fire at run time


def test_configs_compare_equal_and_changes_are_per_program(tmp_path: Path) -> None:
    text = """
        programs:
          a: {command: [sleep, '1'], environment: {X: '1'}}
          b: {command: [sleep, '2'], restart: {delay: 1s}}
        """
    first = load_text(tmp_path, text)
    assert first == load_text(tmp_path, text)
    changed = load_text(tmp_path, text.replace("delay: 1s", "delay: 1000ms"))
    assert changed == first  # same meaning, same config
    changed = load_text(tmp_path, text.replace("delay: 1s", "delay: 2s"))
    assert changed.programs["a"] == first.programs["a"]
    assert changed.programs["b"] != first.programs["b"]


@pytest.mark.parametrize(
    ("body", "key", "expected"),
    [
        ("restart: {delay: soon}", "programs.p.restart.delay", "expected a duration"),
        ("restrat: {}", "programs.p.restrat", "Extra inputs are not permitted"),
        ("limits: {memory: lots}", "programs.p.limits.memory", "expected a size"),
        ("stop: {signal: NOPE}", "programs.p.stop.signal", "signal name"),
        ("restart: {policy: sometimes}", "programs.p.restart.policy", "always"),
        ("restart: {jitter: 2}", "programs.p.restart.jitter", "less than or equal to 1"),
        ("restart: {delay: 1m, max_delay: 1s}", "programs.p.restart", "max_delay"),
        ("restart: {exit_codes: [256]}", "programs.p.restart.exit_codes.0", "255"),
        ("instances: 2\nautoscale: {max: 2, cpu_target: 1}", "programs.p", "mutually exclusive"),
        ("autoscale: {min: 3, max: 2, cpu_target: 1}", "programs.p.autoscale", "greater than max"),
        ("autoscale: {max: 2, cpu_target: lots}", "programs.p.autoscale.cpu_target", "number"),
        ("autoscale: {max: 2}", "programs.p.autoscale", "needs cpu_target or metrics"),
        ("autoscale: {min: 0, max: 2, cpu_target: 1}", "programs.p.autoscale", "min 0 needs"),
        ("autoscale: {max: 2, cpu_target: 1, tolerance: 1}", "programs.p.autoscale.tolerance",
         "less than 1"),
        ("health: {interval: 1s}", "programs.p.health", "exactly one of exec, http, tcp"),
        ("health: {tcp: 'a:1', http: 'http://a'}", "programs.p.health", "exactly one"),
        ("health: {http: 'ftp://x'}", "programs.p.health.http", "http://"),
        ("health: {tcp: 'localhost'}", "programs.p.health.tcp", "host:port"),
        ("user: no-such-user-here", "programs.p.user", "no such user"),
        ("group: no-such-group-here", "programs.p.group", "no such group"),
        ("environment: {A: yes}", "programs.p.environment.A", "quote it"),
        ("environment: {'A=B': x}", "programs.p.environment", "environment variable"),
        ("logs: {max_size: 1MiB}", "programs.p.logs.directory", "Field required"),
    ],
)
def test_errors_name_file_key_and_expectation(
    tmp_path: Path, body: str, key: str, expected: str
) -> None:
    message = error(tmp_path, "programs:\n  p:\n    command: [x]\n" + textwrap.indent(body, "    "))
    assert str(tmp_path / "controller.yaml") in message
    assert f"  {key}: " in message
    assert expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("programs:\n  p: {command: []}\n", "command must not be empty"),
        ("programs:\n  p: {command: \"a 'b\"}\n", "cannot split command string"),
        ("programs:\n  p: {shell: true, command: [a]}\n", "needs command as one string"),
        ("programs:\n  p: {shell: 'yes', command: a}\n", "programs.p.shell"),
        ("programs:\n  p: {}\n", "programs.p.command: Field required"),
        ("programs:\n  -bad: {command: [x]}\n", "String should match pattern"),
        ("programs:\n  'a:b': {command: [x]}\n", "String should match pattern"),
        ("programs:\n  all: {command: [x]}\n", "reserved"),
        ("programs: [a, b]\n", "programs: Input should be a valid dictionary"),
        ("- 1\n", "Input should be a valid dictionary"),
        ("control: {socket: ''}\n", "control.socket"),
        ("control: {allowed_uids: [-1]}\n", "control.allowed_uids.0"),
        ("programs: {p: {command: [x]\n", "not valid YAML"),
    ],
)
def test_more_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error(tmp_path, text)


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(str(tmp_path / "absent.yaml"))
