"""The HTTP requests the controller makes itself: health checks (GET) and webhooks (POST).

One request per connection, the status line is all that is read: that is the whole answer
both callers need, and it keeps a slow or huge body from holding anything up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit


def _context(verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def request(url: str, method: str = "GET", body: bytes = b"",
                  content_type: str = "application/json", verify: bool = True) -> int:
    """The status code of one request; OSError or ValueError when there is none.

    ``verify: False`` accepts any certificate (health checks, as Kubernetes probes do).
    """
    parts = urlsplit(url)
    https = parts.scheme == "https"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(
        parts.hostname or "", parts.port or (443 if https else 80),
        ssl=_context(verify) if https else None)
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}",
                "User-Agent: procpilot", "Connection: close"]
        if method != "GET":
            head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        writer.write("\r\n".join([*head, "", ""]).encode() + body)
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    fields = status_line.split()
    if len(fields) < 2 or not fields[1].isdigit():
        raise ValueError(f"not an HTTP answer: {status_line[:80]!r}")
    return int(fields[1])
