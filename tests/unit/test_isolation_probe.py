"""Backend choice as a pure function of facts, and the names cells' roots get."""

from __future__ import annotations

import pytest

from procpilot.controller.isolation import IsolationError, Limits, root_name, safe_name
from procpilot.controller.isolation.probe import Facts, Place, decide
from procpilot.controller.isolation.v2 import needs_leaf

V1_ALL = ("memory", "cpu", "cpuacct", "pids", "freezer")


def place(mount: str, *controllers: str, exists: bool = True, writable: bool = True,
          cgroup: str | None = "/") -> Place:
    return Place(mount_point=mount, cgroup=cgroup, directory=mount if cgroup else None,
                 exists=exists, is_cgroup=exists, writable=writable,
                 controllers=frozenset(controllers))


def v1_places(*controllers: str, writable: bool = True) -> dict[str, Place]:
    return {c: place(f"/sys/fs/cgroup/{c}", c, writable=writable) for c in controllers}


def kinds(facts: Facts, requested: str = "auto") -> list[str]:
    return [plan.backend for plan in decide(requested, facts)]


def test_pure_v2_host_uses_cgroup2() -> None:
    facts = Facts(place("/sys/fs/cgroup", "cpu", "io", "memory", "pids"), {})
    assert kinds(facts) == ["cgroup2", "none"]
    assert decide("auto", facts)[0].notes == ("pure cgroup2 host",)


def test_pure_v2_without_delegated_controllers_still_prefers_cgroup2() -> None:
    # e.g. a systemd service without Delegate=yes: containment and kill still work.
    assert kinds(Facts(place("/sys/fs/cgroup"), {})) == ["cgroup2", "none"]


def test_hybrid_host_like_this_one_uses_cgroup1() -> None:
    facts = Facts(place("/sys/fs/cgroup/unified", "hugetlb"), v1_places(*V1_ALL))
    plans = decide("auto", facts)
    assert [p.backend for p in plans] == ["cgroup1", "none"]
    assert plans[0].controllers == V1_ALL
    assert plans[0].notes == ()


def test_hybrid_host_where_v2_offers_memory_prefers_cgroup2() -> None:
    facts = Facts(place("/sys/fs/cgroup/unified", "memory"), v1_places("cpu", "pids"))
    assert kinds(facts) == ["cgroup2", "cgroup1", "none"]


def test_partial_v1_uses_what_exists_and_says_what_is_not_enforced() -> None:
    facts = Facts(None, {**v1_places("memory", "cpu"), **v1_places("pids", writable=False)})
    plan = decide("auto", facts)[0]
    assert (plan.backend, plan.controllers) == ("cgroup1", ("memory", "cpu"))
    assert any("pids" in n and "tasks limits are not kernel-enforced" in n for n in plan.notes)
    assert any("freezer" in n for n in plan.notes)


def test_v2_without_controllers_is_containment_when_v1_is_unusable() -> None:
    plans = decide("auto", Facts(place("/sys/fs/cgroup/unified"),
                                 v1_places(*V1_ALL, writable=False)))
    assert [p.backend for p in plans] == ["cgroup2", "none"]
    assert plans[0].notes == ("cgroup2 without controllers: containment only",)
    assert kinds(Facts(place("/sys/fs/cgroup/unified", writable=False), {})) == ["none"]


def test_nothing_usable_is_none_with_reasons() -> None:
    plans = decide("auto", Facts(None, {}))
    assert [p.backend for p in plans] == ["none"]
    assert "cgroup2: no cgroup2 mount in /proc/self/mountinfo" in plans[0].notes


@pytest.mark.parametrize(("facts", "requested", "message"), [
    (Facts(None, v1_places(*V1_ALL)), "cgroup2", "cgroup2: no cgroup2 mount"),
    (Facts(place("/sys/fs/cgroup/unified", exists=False), {}, "/nope"), "cgroup2",
     "cgroup2: /sys/fs/cgroup/unified: does not exist"),
    (Facts(place("/sys/fs/cgroup", writable=False), {}), "cgroup2", "not writable"),
    (Facts(place("/sys/fs/cgroup", cgroup=None), {}), "cgroup2", "in no cgroup of it"),
    (Facts(place("/sys/fs/cgroup"), {}), "cgroup1",
     "cgroup1: no usable hierarchy: memory: not mounted; cpu: not mounted"),
    (Facts(None, v1_places("memory", writable=False)), "cgroup1",
     "memory: /sys/fs/cgroup/memory: not writable"),
    (Facts(None, {}), "cgroup3", "isolation is one of auto, cgroup2, cgroup1, none"),
])
def test_forced_backend_that_cannot_work_says_why(facts: Facts, requested: str,
                                                  message: str) -> None:
    with pytest.raises(IsolationError, match=message):
        decide(requested, facts)


def test_forced_backends_never_fall_back() -> None:
    facts = Facts(place("/sys/fs/cgroup/unified", "hugetlb"), v1_places(*V1_ALL))
    assert kinds(facts, "cgroup2") == ["cgroup2"]
    assert kinds(facts, "cgroup1") == ["cgroup1"]
    assert kinds(facts, "none") == ["none"]


def test_leaf_is_needed_only_to_enable_controllers_in_a_non_root_cgroup_with_processes() -> None:
    wanted = frozenset({"memory"})
    assert needs_leaf(own_is_root=False, has_processes=True, to_enable=wanted)
    assert not needs_leaf(own_is_root=True, has_processes=True, to_enable=wanted)
    assert not needs_leaf(own_is_root=False, has_processes=False, to_enable=wanted)
    assert not needs_leaf(own_is_root=False, has_processes=True, to_enable=frozenset())


def test_root_names() -> None:
    assert root_name("run") == "procpilot-run"
    assert root_name("/run/procpilot/control.sock") == \
        "procpilot-%2Frun%2Fprocpilot%2Fcontrol.sock"
    assert safe_name("..") == "%2E%2E"
    assert safe_name("a b\n") == "a%20b%0A"
    long_a, long_b = safe_name("/x" * 300 + "a"), safe_name("/x" * 300 + "b")
    assert len(long_a) == 200 and long_a != long_b
    with pytest.raises(ValueError):
        safe_name("")


def test_limits_are_validated() -> None:
    assert Limits(memory=1, cpu=0.5).kinds() == {"memory", "cpu"}
    for bad in ({"memory": -1}, {"cpu": 0.0}, {"cpu": float("nan")}, {"cpu": float("inf")},
                {"cpu": 0.001}, {"tasks": 0}):
        with pytest.raises(ValueError):
            Limits(**bad)
