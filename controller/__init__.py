"""procpilot controller: a supervisor with restart backoff, limits and CPU autoscaling."""
