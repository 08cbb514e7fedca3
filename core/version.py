"""The installed distribution's version, for --version and the build_info metrics."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from prometheus_client.metrics_core import Metric

from procpilot.core.metricdef import Family

try:
    __version__ = version("procpilot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


def build_info(family: Family) -> Metric:
    """The constant-1 build info gauge both services export, labeled version and python."""
    info = family.new()
    info.add_metric([__version__, platform.python_version()], 1)
    return info
