"""The supervision keys of the controller config (readiness, depends_on, hooks, rollout,
sockets, logs, include): what they accept, and that every refusal names file and key."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from procpilot.controller import config
from procpilot.controller.config import ConfigError, ProgramConfig


def load(tmp_path: Path, text: str, name: str = "controller.yaml") -> config.ControllerConfig:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return config.load(str(path))


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


def program(**body: object) -> ProgramConfig:
    return ProgramConfig.model_validate({"command": "x", **body})


def test_defaults() -> None:
    p = program()
    assert (p.ready, p.ready_timeout, p.ready_seconds, p.watchdog) == (
        "start_seconds", None, 90.0, None)
    assert (p.depends_on, p.hooks, p.sockets) == ((), (), ())
    assert (p.rollout.strategy, p.rollout.max_surge, p.rollout.max_unavailable) == (
        "rolling", 1, 0)


def test_a_full_program_is_normalised(tmp_path: Path) -> None:
    cfg = load(tmp_path, """
        hooks: [{events: [fatal], url: "https://pager.example/hook"}]
        programs:
          db: {command: x, ready: notify, ready_timeout: 2m, watchdog: 30s}
          web:
            command: x
            depends_on: [db]
            ready: health
            health: {http: "http://127.0.0.1:8080/ready"}
            sockets: [{name: http, listen: "127.0.0.1:8080"}, {name: admin, listen: "unix:/run/a"}]
            rollout: {max_surge: 0, max_unavailable: 2}
            hooks: [{events: [exited, backoff], command: "cleanup --quick", timeout: 1s}]
            logs: {directory: /var/log/x, stderr: separate, timestamps: true}
        """)
    db, web = cfg.programs["db"], cfg.programs["web"]
    assert (db.ready_seconds, db.watchdog) == (120.0, 30.0)
    assert web.depends_on == ("db",)
    assert web.hooks[0].command == ("cleanup", "--quick") and web.hooks[0].kind == "command"
    assert cfg.hooks[0].kind == "webhook"
    assert web.logs is not None and (web.logs.stderr, web.logs.timestamps) == ("separate", True)


@pytest.mark.parametrize(("body", "error"), [
    ("ready: health", "ready: health needs a health section"),
    ("ready_timeout: 5s", "ready_timeout applies to ready: notify or health"),
    ("ready: notify\n    start_seconds: 5s", "start_seconds does not apply to ready: notify"),
    ("watchdog: 5s", "watchdog needs ready: notify"),
    ("ready: soon", "ready: Input should be 'start_seconds', 'notify' or 'health'"),
    ("hooks: [{events: [exited]}]", "a hook needs exactly one of command, url"),
    ("hooks: [{events: [], command: x}]", "hooks.0.events: Tuple should have at least 1 item"),
    ("hooks: [{events: [crashed], command: x}]", "hooks.0.events.0: Input should be 'started'"),
    ("hooks: [{events: [fatal], url: 'ftp://x/'}]", "expected an http:// or https:// URL"),
    ("rollout: {max_surge: 0}", "max_surge and max_unavailable cannot both be 0"),
    ("rollout: {strategy: blue-green}", "rollout.strategy: Input should be 'rolling'"),
    ("sockets: [{name: h, listen: '127.0.0.1:0'}]", "a shared socket needs a fixed port"),
    ("sockets: [{name: h, listen: 'unix:relative'}]", "expected unix:/absolute/path"),
    ("sockets: [{name: 'a:b', listen: ':80'}]", "sockets.0.name: String should match"),
    ("sockets: [{name: a, listen: ':80'}, {name: a, listen: ':81'}]", "name 'a' appears twice"),
    ("sockets: [{name: a, listen: ':80'}, {name: b, listen: ':80'}]", "listen ':80' appears"),
    ("logs: {directory: /x, stderr: apart}", "logs.stderr: Input should be 'merged'"),
])
def test_bad_program_keys_name_the_key(tmp_path: Path, body: str, error: str) -> None:
    message = refused(tmp_path, "programs:\n  web:\n    command: x\n    " + body + "\n")
    assert message.startswith(f"{tmp_path / 'controller.yaml'}: invalid configuration\n")
    assert error in message


@pytest.mark.parametrize(("programs", "errors"), [
    ("a: {command: x, depends_on: [nope]}", ["programs.a.depends_on: no program named 'nope'"]),
    ("a: {command: x, depends_on: [a]}", ["programs.a.depends_on: a cycle: a -> a"]),
    ("a: {command: x, depends_on: [b]}\n  b: {command: x, depends_on: [a]}",
     ["programs.a.depends_on: a cycle: a -> b -> a",
      "programs.b.depends_on: a cycle: b -> a -> b"]),
    ("a: {command: x, depends_on: [b]}\n  b: {command: x, priority: 200}",
     ["programs.a.depends_on: b has priority 200, above a's 100: it would start later"]),
    ("a: {command: x, sockets: [{name: h, listen: ':80'}]}\n"
     "  b: {command: x, sockets: [{name: h, listen: ':80'}]}",
     ["programs.b.sockets: :80 is also a socket of a"]),
])
def test_what_spans_programs_is_checked_too(tmp_path: Path, programs: str,
                                            errors: list[str]) -> None:
    message = refused(tmp_path, "programs:\n  " + programs + "\n")
    assert message.splitlines() == [f"{tmp_path / 'controller.yaml'}: invalid configuration",
                                    *(f"  {e}" for e in errors)]


def test_include_adds_programs_and_names_the_file_of_each_error(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.yaml").write_text("programs:\n  b: {command: x, priority: 5}\n")
    (tmp_path / "conf.d" / "c.yml").write_text("programs:\n  c: {command: x}\n")
    (tmp_path / "conf.d" / "notes.txt").write_text("not a config")
    (tmp_path / "extra-1.yaml").write_text("programs:\n  d: {command: x, depends_on: [b]}\n")
    cfg = load(tmp_path, """
        include: [conf.d, "extra-*.yaml", controller.yaml]
        programs:
          a: {command: x, depends_on: [b]}
        """)
    assert list(cfg.programs) == ["a", "b", "c", "d"]
    (tmp_path / "conf.d" / "c.yml").write_text("programs:\n  c: {command: x, restrat: {}}\n")
    (tmp_path / "extra-1.yaml").write_text("programs:\n  d: {command: x, depends_on: [e]}\n")
    message = refused(tmp_path, """
        include: [conf.d, "extra-*.yaml"]
        programs:
          a: {command: x, priority: -1}
        """)
    assert message.splitlines() == [
        f"{tmp_path / 'conf.d' / 'c.yml'}: invalid configuration",
        "  programs.c.restrat: Extra inputs are not permitted"]


def test_include_problems(tmp_path: Path) -> None:
    (tmp_path / "dup.yaml").write_text("programs:\n  a: {command: y}\n")
    assert refused(tmp_path, "include: [dup.yaml]\nprograms:\n  a: {command: x}\n") == (
        f"{tmp_path / 'dup.yaml'}: invalid configuration\n"
        f"  programs.a: already defined in {tmp_path / 'controller.yaml'}")
    (tmp_path / "more.yaml").write_text("control: {socket: /x}\n")
    assert "an included file holds only programs:" in refused(tmp_path, "include: [more.yaml]")
    assert refused(tmp_path, "include: [absent.d]") == (
        f"{tmp_path / 'controller.yaml'}: include: 'absent.d': no such file or directory")
    assert list(load(tmp_path, "include: ['none-*.yaml']").programs) == []  # globs may be empty
    (tmp_path / "deps.yaml").write_text("programs:\n  b: {command: x, depends_on: [zzz]}\n")
    assert refused(tmp_path, "include: [deps.yaml]") == (
        f"{tmp_path / 'deps.yaml'}: invalid configuration\n"
        "  programs.b.depends_on: no program named 'zzz'")


def test_an_included_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")  # opening it to read would block until a writer comes
    assert refused(tmp_path, "include: [pipe.yaml]") == (
        f"{tmp_path / 'controller.yaml'}: include: 'pipe.yaml': not a regular file or directory")


def test_an_empty_programs_key_takes_included_programs(tmp_path: Path) -> None:
    (tmp_path / "more.yaml").write_text("programs:\n  b: {command: x}\n")
    assert list(load(tmp_path, "include: [more.yaml]\nprograms:\n").programs) == ["b"]
