"""HTTP/1.x request heads in, response bytes out: no sockets, so every malformed input
can be tested directly.

The server reads only request heads (GET and HEAD carry no body; a request announcing one
is answered and its connection closed, never read), so this is all the parsing it needs.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

MAX_REQUEST_LINE = 8 * 1024  # longer: 414, as Python's and Go's servers answer long URIs
MAX_HEAD = 16 * 1024  # request line and headers together; longer: 431 (bounds memory per client)
HEAD_END = re.compile(rb"\r?\n\r?\n")
METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
VERSION = re.compile(r"HTTP/(\d)\.(\d)")
HEADER_NAME = METHOD
NOT_TEXT = re.compile(rb"[^\x20-\x7e]")


class BadRequest(Exception):
    """A request that gets an error status and no further reading; str() says why."""

    def __init__(self, status: HTTPStatus, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: tuple[int, int]
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def has_body(self) -> bool:
        length = self.headers.get("content-length", "0").strip()
        return "transfer-encoding" in self.headers or length != "0"

    @property
    def keep_alive(self) -> bool:
        """HTTP/1.1 keeps the connection unless asked not to. HTTP/1.0 never does: its
        keep-alive is an extension this server does not announce, so such a client reads
        to the end of the connection."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        return self.version != (1, 0) and "close" not in tokens


def head_length(buffer: bytes | bytearray) -> int | None:
    """Bytes of the request head at the start of buffer (through the blank line), or None
    while it is incomplete; BadRequest as soon as the head is certain to be too long."""
    line_end = buffer.find(b"\n", 0, MAX_REQUEST_LINE + 2)
    # Binary input (a TLS handshake, say) is refused at once, not after the head timeout.
    if NOT_TEXT.search(bytes(buffer[: line_end if line_end >= 0 else None]).rstrip(b"\r")):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "not an HTTP request")
    if end := HEAD_END.search(buffer, 0, MAX_HEAD + 4):
        return end.end()
    if line_end < 0 and len(buffer) > MAX_REQUEST_LINE + 1:
        raise BadRequest(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
    if len(buffer) > MAX_HEAD:
        raise BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too long")
    return None


def parse_head(head: bytes) -> Request:
    """The request in a complete head; BadRequest (400, 414 or 505) for anything else."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "bytes outside ASCII in the head") from None
    request_line, *fields = text.rstrip("\r\n").replace("\r\n", "\n").split("\n")
    if len(request_line) > MAX_REQUEST_LINE:
        raise BadRequest(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
    parts = request_line.split(" ")
    if len(parts) != 3 or not METHOD.fullmatch(parts[0]) or not parts[1].isprintable():
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target, version_text = parts
    version = VERSION.fullmatch(version_text)
    if version is None or not target:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed request line")
    if version[1] != "1":
        raise BadRequest(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "only HTTP/1.x is served")
    headers: dict[str, str] = {}
    for field in fields:
        name, colon, value = field.partition(":")
        # No whitespace before the colon and no folded lines (RFC 9112 5.1, 5.2).
        if not colon or not HEADER_NAME.fullmatch(name):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed header field")
        key, value = name.lower(), value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Request(method, target, (1, int(version[2])), headers)


def response(
    status: HTTPStatus,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    head_only: bool = False,
    close: bool = False,
) -> bytes:
    """A complete HTTP/1.1 response; with head_only (for HEAD) the body is left out but its
    length is still announced."""
    lines = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        *(f"{name}: {value}" for name, value in headers),
        f"Content-Length: {len(body)}",
    ]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body
