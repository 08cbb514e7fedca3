"""procpilot exporter: process metrics for Prometheus, read from /proc at scrape time."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("procpilot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
