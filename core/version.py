"""The installed distribution's version, for --version and the build_info metrics."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from prometheus_client.core import GaugeMetricFamily

try:
    __version__ = version("procpilot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


def build_info(prefix: str) -> GaugeMetricFamily:
    """The constant-1 ``<prefix>_build_info`` gauge both services export."""
    info = GaugeMetricFamily(
        f"{prefix}_build_info",
        "A metric with a constant '1' value labeled by version and Python version.",
        labels=["version", "python"],
    )
    info.add_metric([__version__, platform.python_version()], 1)
    return info
