"""procpilot exporter: process metrics for Prometheus, read from /proc at scrape time."""
