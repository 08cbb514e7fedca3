"""procpilotctl's import path holds only what a socket client needs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pydantic", "bcrypt", "ssl", "http.server", "yaml", "typing", "prometheus_client")


def test_ctl_imports_no_server_side_modules() -> None:
    code = ("import json, sys; import procpilot.controller.ctl; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert json.loads(out) == []
