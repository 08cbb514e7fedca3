"""Telling the service manager how the service is doing (systemd's sd_notify protocol):
``READY=1`` once it serves, ``STOPPING=1`` when it begins to stop. With ``Type=notify``
systemd starts what comes ``After=`` a procpilot unit only once it is really up.

One datagram to the unix socket named in NOTIFY_SOCKET (``@`` marks an abstract address).
Without the variable, as outside systemd, nothing is sent. A failure to send is not the
service's failure: the manager is told nothing and the service goes on.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(state: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send ``state`` (``KEY=value`` lines) to the manager; True when it was sent."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address.startswith(("/", "@")):
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state.encode(), address)
    except OSError:
        return False
    return True
