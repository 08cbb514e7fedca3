"""How procpilotctl prints the controller's answers: the status table and log files."""

from __future__ import annotations

import re
import sys
import time

from procpilot.controller.tail import follow, show
from procpilot.core.signals import signal_name
from procpilot.core.units import format_duration, format_size

TYPE_CHECKING = False  # see protocol.py: no typing module at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from procpilot.controller.protocol import (
        Explained,
        InstanceStatus,
        LastExitStatus,
        Status,
    )

COLUMNS = ("PROGRAM", "INSTANCE", "STATE", "READY", "PID", "UPTIME", "RESTARTS", "RSS",
           "LAST-EXIT")


def _last_exit(last: LastExitStatus | None, now: float) -> str:
    if not last:
        return "-"
    sig = last.get("signal")
    how = signal_name(sig) if sig is not None else f"exit {last.get('code')}"
    ago = format_duration(max(0, round(now - float(last.get("time", now)))))
    error = last.get("error")
    why = f"{last.get('reason', '?')}: {error}" if error else last.get("reason", "?")
    return f"{how}, {why}, {ago} ago"


def _state(instance: InstanceStatus) -> str:
    wait = instance.get("backoff_seconds") or 0
    if instance["state"] == "backoff" and wait > 0:
        return f"backoff({format_duration(round(wait))})"
    return str(instance["state"])


def _or_dash(value: Any, fmt: Callable[[Any], str] = str) -> str:
    return "-" if value is None else fmt(value)


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def status_rows(result: Status, now: float) -> list[tuple[str, ...]]:
    """One row per instance (or one per program without instances), as strings."""
    rows: list[tuple[str, ...]] = []
    for prog in result.get("programs", []):
        for inst in prog.get("instances", []):
            rows.append((
                prog["program"], inst["id"], _state(inst), _or_dash(inst.get("ready"), _yes_no),
                _or_dash(inst.get("pid")),
                _or_dash(inst.get("uptime_seconds"), lambda s: format_duration(round(s))),
                str(inst.get("restarts", 0)), _or_dash(inst.get("rss_bytes"), format_size),
                _last_exit(inst.get("last_exit"), now),
            ))
        if not prog.get("instances"):
            rows.append((prog["program"], "-", prog["state"], "-", "-", "-", "-", "-", "-"))
    return rows


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]) for r in rows
    )


def _pools(result: Status) -> list[str]:
    lines = []
    for prog in result.get("programs", []):
        pool = prog.get("pool")
        if pool:
            util = pool.get("utilization")
            mode = "auto" if pool.get("pinned") is None else f"pinned to {pool['pinned']}"
            lines.append(
                f"pool {prog['program']}: {mode}, desired {pool['desired']} "
                f"(min {pool['min']}, max {pool['max']}), utilization "
                + ("-" if util is None else f"{util:.2f}")
            )
    return lines


SIZES = frozenset({"memory", "memory_high", "swap", "core"})


def _limit_value(kind: str, value: int | float | str) -> str:
    if kind in SIZES and isinstance(value, int):
        return format_size(value)
    return str(value)


def _limits(result: Status) -> list[str]:
    """One line per program with limits: each value and who keeps it (kernel, polled...)."""
    lines = []
    for prog in result.get("programs", []):
        limits = prog.get("limits") or []
        if limits:
            kept = ", ".join(f"{lim['kind']} {_limit_value(lim['kind'], lim['value'])} "
                             f"({lim['enforced']})" for lim in limits)
            lines.append(f"limits {prog['program']}: {kept}")
    return lines


def _notes(result: Status) -> list[str]:
    """What a row has no column for: dependencies waited on, STATUS= texts, processes
    still serving while their successors get ready."""
    lines = []
    for prog in result.get("programs", []):
        waiting = prog.get("waiting_for")
        if waiting:
            lines.append(f"{prog['program']}: waiting for {', '.join(waiting)} to be ready")
        for inst in prog.get("instances", []):
            if inst.get("replacing") is not None:
                lines.append(f"{inst['id']}: pid {inst['replacing']} serves until this "
                             "instance is ready (rolling restart)")
            if inst.get("status_text"):
                lines.append(f"{inst['id']}: {inst['status_text']}")
    return lines


def render_status(result: Status, now: float) -> str:
    body = table([COLUMNS, *status_rows(result, now)])
    return "\n".join([body, *_notes(result), *_pools(result), *_limits(result)])


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def render_explain(decisions: list[Explained]) -> str:
    """One block per decision, oldest first: each target's value, utilization and count,
    then the highest count before and after stabilization and limits, and why."""
    if not decisions:
        return "no decision yet (the first comes one interval after start)"
    blocks = []
    for d in decisions:
        when = time.strftime("%H:%M:%S", time.localtime(d["time"]))
        rows = [("METRIC", "VALUE", "UTILIZATION", "WANTS", "WHY")]
        rows += [(t["name"], _number(t["value"]), _number(t["utilization"]),
                  _or_dash(t["recommendation"]), t["reason"]) for t in d["targets"]]
        blocks.append(f"{when}  {d['current']} -> {d['desired']} ({d['reason']}; highest "
                      f"wanted {_or_dash(d['recommendation'])})\n" + table(rows))
    return "\n\n".join(blocks)


def print_logs(files: list[str], program: str, lines: int | None, keep: bool) -> None:
    """The last lines of each file (all by default, 10 with keep), then, with keep, more."""
    labels = [_label(path, program) for path in files]
    count = lines if lines is not None else (10 if keep else None)
    if keep:
        follow(files, labels, sys.stdout.buffer, count)
    else:
        show(files, labels, sys.stdout.buffer, count)


def _label(path: str, program: str) -> str:
    """'/var/log/procpilot/web-1.log' -> 'web:1' (the instance id), '...web-1.err.log' ->
    'web:1 stderr', else the file name."""
    name = path.rsplit("/", 1)[-1]
    match = re.fullmatch(re.escape(program) + r"-(\d+)(\.err)?\.log", name)
    if match is None:
        return name
    return f"{program}:{match.group(1)}" + (" stderr" if match.group(2) else "")
