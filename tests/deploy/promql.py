"""PromQL helpers for the tests: syntax via promtool, metric and label names via a tokenizer.

promtool has no "parse this expression" command in the versions Debian ships, so syntax is
checked by wrapping expressions in a temporary rule file and running `promtool check rules`.
Names are pulled out with a small tokenizer: enough for the expressions we write (vector
selectors, functions, aggregations with by/without, on/ignoring/group_* matching).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .contract import LABEL_VALUES, METRICS, TARGET_LABELS

# Grafana's built-in interval variables become durations, every other variable a regex
# that matches anything (variables only appear inside =~ matchers in our dashboards).
GRAFANA_INTERVALS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__\w+)\}")
GRAFANA_VARIABLE = re.compile(r"\$\{\w+(?::\w+)?\}|\$\w+")

TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>\d[\d.]*(?:e[+-]?\d+)?(?:ms|[smhdwy])*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[{}(),=<>+\-*/%^])
  | (?P<space>\s+)
    """,
    re.VERBOSE,
)
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, op, value)


@dataclass
class Names:
    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


def substitute_grafana_variables(expr: str) -> str:
    return GRAFANA_VARIABLE.sub(".+", GRAFANA_INTERVALS.sub("5m", expr))


def tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot tokenize {expr[pos:]!r} in {expr!r}")
        kind = m.lastgroup or ""
        if kind != "space":
            out.append((kind, m.group()))
        pos = m.end()
    return out


def _label_list(toks: list[tuple[str, str]], i: int) -> tuple[list[str], int]:
    """Labels of "( a, b )" starting at toks[i] == "("; returns them and the index after ")"."""
    labels = []
    i += 1
    while toks[i][1] != ")":
        if toks[i][0] == "ident":
            labels.append(toks[i][1])
        i += 1
    return labels, i + 1


def names(expr: str) -> Names:
    """Vector selectors (metric and matchers) and grouping labels used in an expression."""
    toks = tokens(expr)
    found = Names()
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        following = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "ident" and text in GROUPING:
            if following == "(":
                labels, i = _label_list(toks, i + 1)
                found.grouping.update(labels)
                continue
        elif (kind == "ident" and (following == "(" or following in GROUPING)) or text in KEYWORDS:
            pass  # a function or aggregation name ("sum by (...)"), or an operator keyword
        elif kind == "ident":
            selector = Selector(text)
            found.selectors.append(selector)
            if following == "{":
                i += 2
                while toks[i][1] != "}":
                    if toks[i][0] == "ident":
                        label, op, value = toks[i][1], toks[i + 1][1], toks[i + 2][1]
                        selector.matchers.append((label, op, value[1:-1]))
                        i += 3
                    else:
                        i += 1
        elif text == "{":
            raise ValueError(f"selector without a metric name in {expr!r}")
        i += 1
    return found


def contract_violations(expr: str) -> list[str]:
    """Everything in the expression the metrics contract does not have."""
    found = names(expr)
    problems = []
    known_labels = set(TARGET_LABELS)
    for sel in found.selectors:
        if sel.metric not in METRICS:
            problems.append(f"unknown metric {sel.metric}")
            continue
        labels = METRICS[sel.metric] | TARGET_LABELS
        known_labels |= labels
        for label, op, value in sel.matchers:
            if label not in labels:
                problems.append(f"{sel.metric} has no label {label}")
            allowed = LABEL_VALUES.get((sel.metric, label))
            if allowed is None or op not in ("=", "=~"):
                continue
            values = value.split("|") if op == "=~" else [value]
            problems += [
                f'{sel.metric}{{{label}="{v}"}}: not one of {sorted(allowed)}'
                for v in values
                if v not in allowed
            ]
    problems += [f"grouping by unknown label {g}" for g in sorted(found.grouping - known_labels)]
    if not found.selectors:
        problems.append("no metric referenced")
    return problems


def promtool_check(exprs: dict[str, str], tmp_path: Path, promtool: str) -> tuple[int, str]:
    """Run `promtool check rules` on the expressions (one group each, named by its key)."""
    groups = [
        {"name": where, "rules": [{"record": "procpilot:check", "expr": expr}]}
        for where, expr in exprs.items()
    ]
    rule_file = tmp_path / "exprs.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr
