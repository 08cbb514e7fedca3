"""HTTP serving shared by the exporter and the controller: ``flags`` (the exporter-toolkit
web flags), ``config`` (--web.config.file), ``auth`` (basic auth) and ``server``.
"""
