"""The pure decisions behind supervision: start and stop order (depends), what a rollout
does next (rolling), and what a notify datagram says (notify.parse)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from procpilot.controller import depends
from procpilot.controller.notify import Notice, parse
from procpilot.controller.rolling import Moves, next_moves

DEPS = {"db": [], "cache": [], "web": ["db", "cache"], "lb": ["web"], "cron": [], "batch": ["db"]}
PRIORITY = {"db": 10, "cache": 100, "web": 100, "lb": 100, "cron": 100, "batch": 200}


def test_waves_follow_priority_then_dependencies_within_a_priority() -> None:
    assert depends.waves(DEPS, DEPS, PRIORITY) == [
        ["db"], ["cache", "cron"], ["web"], ["lb"], ["batch"]]
    assert depends.waves(["lb", "cron"], DEPS, PRIORITY) == [["cron"], ["lb"]]


def test_closure_pulls_in_what_is_depended_on() -> None:
    assert depends.closure(["lb"], DEPS) == {"lb", "web", "db", "cache"}
    assert depends.closure(["unknown"], DEPS) == set()


def test_problems_name_each_program_once() -> None:
    deps = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["x"], "e": ["d"], "f": []}
    priority = dict.fromkeys(deps, 100) | {"f": 300}
    deps["e"] = ["f"]
    assert depends.problems(deps, priority) == {
        "a": "a cycle: a -> b -> c -> a", "b": "a cycle: b -> c -> a -> b",
        "c": "a cycle: c -> a -> b -> c", "d": "no program named 'x'",
        "e": "f has priority 300, above e's 100: it would start later"}


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.lists(st.sampled_from("abcdefgh")),
                       max_size=8))
def test_any_graph_without_problems_orders_every_dependency_first(
    deps: dict[str, list[str]],
) -> None:
    priority = dict.fromkeys(deps, 0)
    if depends.problems(deps, priority):
        return
    position = {n: i for i, wave in enumerate(depends.waves(deps, deps, priority)) for n in wave}
    assert set(position) == set(deps)
    assert all(position[d] < position[n] for n in deps for d in deps[n])


def test_rollout_moves_surge_first_within_both_allowances() -> None:
    assert next_moves(10, 0, 0, max_surge=1, max_unavailable=0) == Moves(1, 0)
    assert next_moves(10, 1, 0, max_surge=1, max_unavailable=0) == Moves(0, 0)
    assert next_moves(10, 0, 0, max_surge=2, max_unavailable=1) == Moves(2, 1)
    assert next_moves(2, 0, 0, max_surge=2, max_unavailable=1) == Moves(2, 0)
    assert next_moves(5, 0, 1, max_surge=0, max_unavailable=1) == Moves(0, 0)
    assert next_moves(5, 0, 2, max_surge=0, max_unavailable=1) == Moves(0, 0)  # never below 0


def test_notify_messages() -> None:
    assert parse(b"READY=1\nSTATUS=Serving 3 clients") == Notice(ready=True,
                                                                 status="Serving 3 clients")
    assert parse(b"WATCHDOG=1\n") == Notice(watchdog=True)
    assert parse(b"WATCHDOG=trigger") == Notice(watchdog_trigger=True)
    assert parse(b"STOPPING=1\nMAINPID=12\nX") == Notice(stopping=True)
    assert parse(b"READY=0\nSTATUS=\xff" + b"x" * 500) == Notice(status="\ufffd" + "x" * 199)
