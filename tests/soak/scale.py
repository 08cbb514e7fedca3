"""How long and how hard the soak and fault tests run.

The test command runs them short (seconds each: they prove the mechanisms); `./dev soak`
sets PROCPILOT_SOAK=full for the figures in the README's reliability table. Each test
prints one table row with its figures (visible with pytest -s).
"""

from __future__ import annotations

import os

FULL = os.environ.get("PROCPILOT_SOAK") == "full"


def pick(short: float, full: float) -> float:
    return full if FULL else short


def report(scenario: str, load: str, figures: dict[str, object]) -> None:
    shown = ", ".join(f"{k} {v}" for k, v in figures.items())
    print(f"\n| {scenario} | {load} | {shown} |", flush=True)
