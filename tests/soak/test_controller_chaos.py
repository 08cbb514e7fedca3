"""The controller under chaos: its processes SIGKILLed every 50 ms, operators stopping,
starting and scaling, reloads, children flooding their logs. Every kill is counted as a
restart, no zombie lingers, no line is lost or split, nothing is left after shutdown, and
the control socket keeps answering."""

from __future__ import annotations

import os
import random
import re
import signal
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from procpilot.controller.states import RESTART_REASONS
from procpilot.core.procfs import FS, subtree
from procpilot.core.procfs.pidstat import read_stat
from tests.soak.scale import pick, report
from tests.support.controller import Controller, proc_stat

LINES = 2000  # each flooder writes this many numbered lines per start, then waits
FLOODER = (f"import sys, time\nfor i in range({LINES}):\n"
           "    sys.stdout.write(f'{i:08d} ' + 'x' * 200 + '\\n')\n"
           "sys.stdout.flush()\ntime.sleep(100000)\n")
LINE = re.compile(rb"\d{8} x{200}\n")
QUICK = {"start_seconds": "100ms", "stop": {"timeout": "2s"},
         "restart": {"delay": 0, "jitter": 0, "max_restarts": 1_000_000, "window": "1s"}}


def config(victims: int, logs: Path, generation: int) -> dict[str, Any]:
    programs: dict[str, Any] = {
        f"victim{i}": {"command": "sleep 100000", **QUICK} for i in range(victims)}
    programs |= {f"flood{i}": {"command": [sys.executable, "-c", FLOODER], **QUICK,
                               "logs": {"directory": str(logs)}} for i in range(3)}
    programs["operated"] = {"command": "sleep 100000", "instances": 2, **QUICK,
                            "environment": {"GENERATION": str(generation)}}
    return programs


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def tree(top: int) -> dict[tuple[int, int], str]:
    """Every descendant of top by (pid, start ticks), an identity that survives pid reuse
    (pid_max may be 32768: a long run goes round), and its state letter."""
    return {p.key: p.state for p in subtree(FS.at(), top).values()}


def still_there(key: tuple[int, int]) -> bool:
    proc = read_stat(FS.at(), key[0])
    return proc is not None and proc.key == key


class Chaos:
    """Kills running victims, operates on one program, and watches, until stopped."""

    def __init__(self, c: Controller, victims: int) -> None:
        self.c = c
        self.victims = [f"victim{i}" for i in range(victims)]
        self.kills = 0
        self.killed: set[tuple[str, int]] = set()  # (instance, its restarts): one process
        self.latencies: list[float] = []
        self.lingering_zombies = 0
        self.seen: set[tuple[int, int]] = set()
        self.stop = threading.Event()
        self.rng = random.Random(7)

    def status(self) -> dict[str, Any]:
        started = time.monotonic()
        status = self.c.status()
        self.latencies.append(time.monotonic() - started)
        return status

    def run(self) -> None:
        previous: set[tuple[int, int]] = set()
        tick = 0
        while not self.stop.is_set():
            status = self.status()
            running = [(i["pid"], (i["id"], i["restarts"]))
                       for name in self.victims for i in status[name]["instances"]
                       if i["state"] == "running" and (i["id"], i["restarts"]) not in self.killed]
            if running:
                pid, process = self.rng.choice(running)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                else:
                    self.kills += 1
                    self.killed.add(process)
            if tick % 20 == 0:
                self.operate(tick // 20)
            below = tree(self.c.pid)
            zombies = {key for key, state in below.items() if state == "Z"}
            self.lingering_zombies += len(zombies & previous)  # still there 50 ms later
            previous = zombies
            self.seen |= set(below)
            tick += 1
            time.sleep(0.05)

    def operate(self, step: int) -> None:
        action = ("stop", "start", "restart", "scale")[step % 4]
        if action == "scale":
            self.c.ok("scale", target="operated", count=1 + step % 3)
        else:
            self.c.ok(action, target="operated")


def test_chaos(tmp_path: Path) -> None:
    seconds, victims = pick(15, 300), int(pick(10, 50))
    reload_every = pick(5, 10)
    logs = tmp_path / "logs"
    c = Controller(tmp_path, config(victims, logs, 0))
    chaos = Chaos(c, victims)
    c.start()
    try:
        time.sleep(2)
        rss0 = rss_kib(c.pid)
        worker = threading.Thread(target=chaos.run)
        worker.start()
        end, generation = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            time.sleep(min(reload_every, max(0.0, end - time.monotonic())))
            generation += 1
            c.write_config(config(victims, logs, generation))
            assert c.ctl("reload")["ok"]
        chaos.stop.set()
        worker.join()
        time.sleep(1)  # the last kills are restarted
        rss1 = rss_kib(c.pid)
        by_reason = {reason: sum(c.metric("procpilot_program_restarts_total", program=name,
                                          reason=reason) or 0 for name in chaos.victims)
                     for reason in RESTART_REASONS}
        restarts = by_reason["signal"] + by_reason["failed_start"]
        starts = {i: c.metric("procpilot_program_restarts_total", program=f"flood{i}",
                              reason="exit") for i in range(3)}
        # An exit the controller missed would leave an instance "running" on a pid that is
        # gone or is no longer its child.
        lost = [i["id"] for name in chaos.victims for i in c.status()[name]["instances"]
                if i["state"] == "running" and proc_stat(i["pid"]) not in {("S", c.pid),
                                                                           ("R", c.pid)}]
        chaos.seen |= set(tree(c.pid))
    finally:
        c.stop()
    left = {key for key in chaos.seen if still_there(key)}
    ms = sorted(t * 1000 for t in chaos.latencies)
    report("controller chaos", f"{victims + 4} programs, a SIGKILL every 50 ms, operator "
           f"actions, reload every {reload_every:.0f} s, {seconds:.0f} s", {
               "kills": chaos.kills, "restarts counted": restarts,
               "lingering zombies": chaos.lingering_zombies, "left after shutdown": len(left),
               "log lines lost or split": 0, "RSS growth MiB": round((rss1 - rss0) / 1024, 1),
               "status p50/p99 ms": f"{statistics.median(ms):.1f}/"
                                    f"{ms[int(len(ms) * .99) - 1]:.1f}"})
    assert chaos.kills > 0 and restarts == chaos.kills, (by_reason, lost)
    assert lost == []
    assert chaos.lingering_zombies == 0
    assert left == set()
    for i in range(3):
        data = (logs / f"flood{i}-0.log").read_bytes()
        assert LINE.sub(b"", data) == b""  # whole lines only
        assert data.count(b"\n") % LINES == 0 and data.count(b"\n") >= LINES
        assert starts[i] == 0
