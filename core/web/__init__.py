"""HTTP serving shared by the exporter and the controller: ``flags`` (the exporter-toolkit
web flags), ``config`` (--web.config.file), ``auth`` (basic auth), ``http`` (request heads
and responses), ``connections`` (the sockets and the bounded workers) and ``server``.
"""
