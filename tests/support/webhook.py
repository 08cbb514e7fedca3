"""A tiny HTTP server on 127.0.0.1 for tests: answers GETs with what the test sets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class Answer:
    """Serves ``body`` (settable at any time) with ``content_type`` to every GET."""

    def __init__(self, body: bytes = b"", content_type: str = "application/json") -> None:
        self.body = body
        answer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = answer.body
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def answering(body: bytes = b"", content_type: str = "application/json") -> Iterator[Answer]:
    answer = Answer(body, content_type)
    thread = threading.Thread(target=answer.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield answer
    finally:
        answer.server.shutdown()
        answer.server.server_close()
