"""Signal names as people write them, for any number the kernel may deliver.

`signal.Signals` has no member for most real-time signals (34 to 64 on Linux), so naming
one with it raises: these get the `SIGRTMIN+n` form the kill(1) and ps tools use.
"""

from __future__ import annotations

import signal


def signal_name(number: int) -> str:
    """SIGTERM for 15, SIGRTMIN+6 for 40; anything else as "signal N"."""
    try:
        return signal.Signals(number).name
    except ValueError:
        pass
    if signal.SIGRTMIN < number <= signal.SIGRTMAX:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}"
    return f"signal {number}"
