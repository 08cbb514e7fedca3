"""Health checks (exec, http, tcp) run as asyncio tasks, one per running instance: liveness
and, with ``ready: health``, readiness.

exec checks are spawned through the reaper like everything else (an asyncio subprocess would
bring its own child watcher); a check that outlives its timeout is killed with its group.
https checks do not verify the certificate, as Kubernetes probes do not: the check asks
"is it alive", and local services often use self-signed certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import replace

from procpilot.controller import http
from procpilot.controller.config import Health
from procpilot.controller.reaper import Reaper
from procpilot.controller.spawn import SpawnSpec, run_to_exit

log = logging.getLogger(__name__)


async def _exec_check(spec: SpawnSpec, reaper: Reaper, timeout: float) -> bool:
    try:
        status = await asyncio.wait_for(run_to_exit(spec, reaper), timeout)
    except TimeoutError:
        return False
    return status.code == 0


async def _http_check(url: str) -> bool:
    return 200 <= await http.request(url, verify=False) < 400


async def _tcp_check(host: str, port: int) -> bool:
    _reader, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def check_once(health: Health, reaper: Reaper, program: SpawnSpec) -> bool:
    """One check within health.timeout; any error counts as a failure.

    An exec check runs like the program itself (environment, directory, user, group);
    one that cannot be spawned (an unknown user, a failing exec) fails too, rather than
    ending the instance's health task.
    """
    try:
        if health.exec is not None:
            spec = replace(program, argv=health.exec, capture_output=False)
            return await _exec_check(spec, reaper, health.timeout)
        if health.http is not None:
            return await asyncio.wait_for(_http_check(health.http), health.timeout)
        host, port = health.tcp_address
        return await asyncio.wait_for(_tcp_check(host, port), health.timeout)
    except (OSError, TimeoutError, ValueError, KeyError, subprocess.SubprocessError) as e:
        log.debug("health check error", extra={"fields": {"err": str(e)}})
        return False


async def monitor(health: Health, check: Callable[[], Awaitable[bool]],
                  on_unhealthy: Callable[[], None],
                  on_ready: Callable[[], None] | None = None) -> None:
    """Check every interval after start_period; call on_unhealthy at failure_threshold in a row.

    With ``on_ready`` (``ready: health``) the first passing check calls it, and failures
    count only from then on: until then the instance is starting, which ready_timeout bounds.
    The caller cancels the task when the instance stops; on_unhealthy is called at most once.
    """
    await asyncio.sleep(health.start_period)
    failures = 0
    while True:
        if await check():
            failures = 0
            if on_ready is not None:
                on_ready()
                on_ready = None
        elif on_ready is None:
            failures += 1
            if failures >= health.failure_threshold:
                on_unhealthy()
                return
        await asyncio.sleep(health.interval)
