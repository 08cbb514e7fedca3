"""`./dev demo`: the controller supervising the exporter and a few demo programs.

Runs from the repository root; everything it writes goes under run/demo/. When Debian's
prometheus is installed it also starts a Prometheus server scraping both services with the
shipped alerting rules. Ctrl-C (or --duration) stops everything in order.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "run" / "demo"
BIN = Path(sys.executable).parent
EXPORTER = "http://127.0.0.1:10120"
CONTROLLER = "http://127.0.0.1:10121"
SOCKET = RUN / "control.sock"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def wait_until(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.2)
    return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start_prometheus(env: dict[str, str]) -> tuple[subprocess.Popen[bytes] | None, str]:
    exe = shutil.which("prometheus")
    if exe is None:
        return None, "not installed (as root, ./dev demo installs Debian's prometheus)"
    port = 9090 if port_free(9090) else 10190
    rules = ROOT / "deploy" / "prometheus" / "alerts.yml"
    config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": [str(rules)] if rules.exists() else [],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in (("procpilot-exporter", "127.0.0.1:10120"),
                                ("procpilot-controller", "127.0.0.1:10121"))
        ],
    }
    (RUN / "prometheus.yml").write_text(json.dumps(config, indent=2))  # JSON is valid YAML
    log = (RUN / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [exe, f"--config.file={RUN / 'prometheus.yml'}", f"--storage.tsdb.path={RUN / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
    )
    return proc, f"http://127.0.0.1:{port}"


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "procpilotctl"), f"--control.socket={SOCKET}", *args],
                          capture_output=True, text=True, check=False, timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless the exporter, the controller and its programs came up")
    args = parser.parse_args()

    os.chdir(ROOT)
    RUN.mkdir(parents=True, exist_ok=True)
    (RUN / "load").unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for port in (10120, 10121):
        if not port_free(port):
            print(f"demo: port {port} is in use; stop what listens there first", file=sys.stderr)
            return 1

    prometheus, prom_where = start_prometheus(env)
    controller = subprocess.Popen(
        [str(BIN / "procpilot-controller"), "--config.file=examples/demo.yaml",
         "--web.listen-address=127.0.0.1:10121", f"--control.socket={SOCKET}"],
        env=env, stdin=subprocess.DEVNULL, stderr=(RUN / "controller.log").open("wb"),
    )
    stop_requested = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    up = wait_until(lambda: answers(CONTROLLER + "/metrics") and answers(EXPORTER + "/metrics"),
                    60)
    print(f"""
procpilot demo {'is running' if up else 'did not come up: see run/demo/controller.log'}

  exporter metrics     {EXPORTER}/metrics
  controller metrics   {CONTROLLER}/metrics
  prometheus           {prom_where}
  program status       .venv/bin/procpilotctl --control.socket {SOCKET.relative_to(ROOT)} status
  load the pool        touch run/demo/load      (rm run/demo/load to let it shrink)
  logs                 run/demo/logs/ and run/demo/controller.log

Ctrl-C stops the programs in reverse priority order.
""", flush=True)
    time.sleep(2)
    print(ctl("status").stdout, flush=True)

    ok = up
    if args.check:
        status = ctl("--json", "status")
        ok = ok and status.returncode == 0 and '"exporter"' in status.stdout
    deadline = None if args.duration is None else time.monotonic() + args.duration
    while not stop_requested and controller.poll() is None:
        if deadline is not None and time.monotonic() > deadline:
            break
        time.sleep(0.2)

    if controller.poll() is None:
        controller.send_signal(signal.SIGTERM)
    code = controller.wait(timeout=120)
    if prometheus is not None:
        prometheus.terminate()
        prometheus.wait(timeout=60)
    print(f"demo: controller exited with status {code}")
    return 0 if ok and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
