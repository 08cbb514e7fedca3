"""Liveness checks (exec, http, tcp) run as asyncio tasks, one per running instance.

exec checks are spawned through the reaper like everything else (an asyncio subprocess would
bring its own child watcher); a check that outlives its timeout is killed with its group.
https checks do not verify the certificate, as Kubernetes probes do not: the check asks
"is it alive", and local services often use self-signed certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace
from urllib.parse import urlsplit

from procpilot.controller.config import Health
from procpilot.controller.reaper import Reaper
from procpilot.controller.spawn import SpawnSpec, spawn

log = logging.getLogger(__name__)


async def _exec_check(spec: SpawnSpec, reaper: Reaper, timeout: float) -> bool:
    child = spawn(spec, reaper)
    try:
        status = await asyncio.wait_for(asyncio.shield(child.exited), timeout)
    except TimeoutError:
        child.signal_group(signal.SIGKILL)
        await child.exited
        return False
    except asyncio.CancelledError:  # the instance stopped: its check must not outlive it
        child.signal_group(signal.SIGKILL)
        raise
    return status.code == 0


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _http_check(url: str) -> bool:
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    reader, writer = await asyncio.open_connection(
        host, port, ssl=_insecure_context() if https else None
    )
    try:
        host_header = parts.netloc.rpartition("@")[2]
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: procpilot-health\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    fields = status_line.split()
    return len(fields) >= 2 and fields[1].isdigit() and 200 <= int(fields[1]) < 400


async def _tcp_check(host: str, port: int) -> bool:
    _reader, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def check_once(health: Health, reaper: Reaper, program: SpawnSpec) -> bool:
    """One check within health.timeout; any error counts as a failure.

    An exec check runs like the program itself (environment, directory, user, group).
    """
    try:
        if health.exec is not None:
            spec = replace(program, argv=health.exec, capture_output=False)
            return await _exec_check(spec, reaper, health.timeout)
        if health.http is not None:
            return await asyncio.wait_for(_http_check(health.http), health.timeout)
        host, port = health.tcp_address
        return await asyncio.wait_for(_tcp_check(host, port), health.timeout)
    except (OSError, TimeoutError, ValueError) as e:
        log.debug("health check error", extra={"fields": {"err": str(e)}})
        return False


async def monitor(health: Health, check: Callable[[], Awaitable[bool]],
                  on_unhealthy: Callable[[], None]) -> None:
    """Check every interval after start_period; call on_unhealthy at failure_threshold in a row.

    The caller cancels the task when the instance stops; on_unhealthy is called at most once.
    """
    await asyncio.sleep(health.start_period)
    failures = 0
    while True:
        if await check():
            failures = 0
        else:
            failures += 1
            if failures >= health.failure_threshold:
                on_unhealthy()
                return
        await asyncio.sleep(health.interval)
