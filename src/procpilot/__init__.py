"""procpilot: process metrics for Prometheus and a process supervisor, in one distribution.

The code lives in the repository's top-level folders (core/, exporter/, controller/); this
package only names them under one import namespace, so that nothing generic such as
``exporter`` lands at the top of site-packages.
"""
