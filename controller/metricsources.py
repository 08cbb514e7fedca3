"""Reading a pool's work from outside it: a Prometheus query, a URL answering JSON, or a
command printing a number.

Each read gives one number or raises :class:`MetricError` saying why. Reads are bounded by
the metric's timeout and never block the event loop: HTTP runs in a worker thread, commands
are spawned through the reaper like every child. Parsing is pure and separate.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import signal
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlencode

from procpilot.controller.autoscaleconfig import (
    CommandMetric,
    HTTPMetric,
    PrometheusMetric,
    TotalMetric,
)
from procpilot.controller.reaper import Reaper
from procpilot.controller.spawn import SpawnSpec, spawn

BODY_LIMIT = 1 << 20  # an answer larger than this is not one number


class MetricError(Exception):
    """The metric could not be read; str() says why (for the log and the errors counter)."""


def parse_prometheus(body: bytes) -> float:
    """The one number of an instant query's answer; an empty vector is 0 (no backlog)."""
    try:
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise MetricError(f"query failed: {answer.get('error', answer.get('status'))}")
        data = answer["data"]
        if data["resultType"] == "scalar":
            return float(data["result"][1])
        if data["resultType"] != "vector":
            raise MetricError(f"query returned a {data['resultType']}, not one number")
        samples = data["result"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise MetricError(f"not a Prometheus query answer: {e!r}") from None
    if not samples:
        return 0.0
    if len(samples) > 1:
        raise MetricError(f"query returned {len(samples)} series; aggregate them (sum) to one")
    try:
        return float(samples[0]["value"][1])
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise MetricError(f"not a sample value: {e!r}") from None


def parse_json_number(body: bytes, field: str | None) -> float:
    """A JSON number, or the number at a dotted path of a JSON object."""
    try:
        value = json.loads(body)
    except ValueError as e:
        raise MetricError(f"not JSON: {e}") from None
    for key in field.split(".") if field else ():
        if not isinstance(value, dict) or key not in value:
            raise MetricError(f"no field {field!r} in the answer")
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MetricError(f"{field or 'the answer'} is not a number: {str(value)[:80]!r}")
    return float(value)


def parse_number(output: bytes) -> float:
    """What a command printed: one number, surrounding white space allowed."""
    try:
        return float(output.decode().strip())
    except (UnicodeDecodeError, ValueError):
        raise MetricError(f"printed {output[:80]!r}, not a number") from None


def _headers(metric: PrometheusMetric | HTTPMetric) -> dict[str, str]:
    """Credentials are read from their files at each read, so rotating them needs no reload."""
    try:
        if metric.bearer_token_file is not None:
            with open(metric.bearer_token_file) as f:
                return {"Authorization": f"Bearer {f.read().strip()}"}
        if metric.basic_auth is not None:
            with open(metric.basic_auth.password_file) as f:
                pair = f"{metric.basic_auth.username}:{f.read().strip()}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    except OSError as e:
        raise MetricError(f"cannot read the credentials: {e.strerror}: {e.filename}") from None
    return {}


def _context(metric: PrometheusMetric | HTTPMetric) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=metric.tls.ca_file)
    if metric.tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def http_get(url: str, metric: PrometheusMetric | HTTPMetric) -> bytes:
    """GET url (blocking; run in a thread) with the metric's credentials and TLS settings."""
    request = urllib.request.Request(url, headers={**_headers(metric),
                                                   "User-Agent": "procpilot-autoscaler"})
    context = _context(metric) if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=metric.timeout, context=context) as r:
            body: bytes = r.read(BODY_LIMIT + 1)
    except urllib.error.HTTPError as e:
        raise MetricError(f"{url}: HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise MetricError(f"{url}: {getattr(e, 'reason', e)}") from None
    if len(body) > BODY_LIMIT:
        raise MetricError(f"{url}: answer larger than {BODY_LIMIT} bytes")
    return body


async def run_command(argv: tuple[str, ...], reaper: Reaper, timeout: float) -> bytes:
    """Run argv (its own process group, output to a pipe) and return what it printed on
    stdout and stderr; MetricError unless it exits 0 within the timeout."""
    loop = asyncio.get_running_loop()
    try:
        child = spawn(SpawnSpec(argv=argv, env=dict(os.environ)), reaper)
    except (OSError, ValueError, KeyError) as e:
        raise MetricError(f"cannot run {argv[0]}: {e}") from None
    assert child.output_fd is not None
    fd, output, done = child.output_fd, bytearray(), loop.create_future()

    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        output.extend(chunk[: max(0, BODY_LIMIT - len(output))])
        if not chunk and not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        status = await asyncio.wait_for(asyncio.gather(child.exited, done), timeout)
    except TimeoutError:
        child.signal_group(signal.SIGKILL)
        raise MetricError(f"{argv[0]}: no answer within {timeout}s") from None
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    if status[0].code != 0:
        raise MetricError(f"{argv[0]}: {status[0].describe()}")
    return bytes(output)


async def read(metric: TotalMetric, reaper: Reaper) -> float:
    """One reading of a metric from outside the pool (NaN comes back as it is)."""
    if isinstance(metric, CommandMetric):
        return parse_number(await run_command(metric.command, reaper, metric.timeout))
    if isinstance(metric, PrometheusMetric):
        url = f"{metric.server.rstrip('/')}/api/v1/query?" + urlencode({"query": metric.query})
    else:
        url = metric.url
    loop = asyncio.get_running_loop()
    try:
        body = await asyncio.wait_for(loop.run_in_executor(None, http_get, url, metric),
                                      metric.timeout + 1)
    except TimeoutError:
        raise MetricError(f"{url}: no answer within {metric.timeout}s") from None
    if isinstance(metric, PrometheusMetric):
        return parse_prometheus(body)
    return parse_json_number(body, metric.field)


def finite(value: float) -> float | None:
    """The value, or None where it cannot be used (NaN, infinities): a failed reading."""
    return value if math.isfinite(value) else None
