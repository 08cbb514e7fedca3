"""Demo pool worker: burns CPU while the load flag file exists, idles otherwise."""

import os
import sys
import time

FLAG = sys.argv[1] if len(sys.argv) > 1 else "run/demo/load"

while True:
    if os.path.exists(FLAG):
        end = time.monotonic() + 0.1
        while time.monotonic() < end:
            pass
    else:
        time.sleep(0.5)
