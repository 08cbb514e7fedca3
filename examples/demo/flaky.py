"""Demo program that crashes now and then, to show restarts, backoff and give-up."""

import random
import sys
import time

print("flaky: up", flush=True)
time.sleep(random.uniform(5, 40))
print("flaky: crashing with status 3", file=sys.stderr, flush=True)
sys.exit(3)
