"""procpilotctl's side of the control socket: send one request line, read one answer."""

from __future__ import annotations

import os
import socket
import stat

from procpilot.controller.protocol import ProtocolError, encode, parse_response
from procpilot.core.units import format_duration

TYPE_CHECKING = False  # see protocol.py: no typing module at run time
if TYPE_CHECKING:
    from procpilot.controller.protocol import Request, Response


class Unreachable(Exception):
    """The controller could not be asked; str() says why."""


def request(path: str, message: Request, timeout: float) -> Response:
    """Send one request line and read the one response line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            sock.sendall(encode(message))
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except FileNotFoundError:
            raise Unreachable(f"{path}: no such socket (controller not running?)") from None
        except ConnectionRefusedError:
            raise Unreachable(f"{path}: {_refused_why(path)}") from None
        except PermissionError:
            raise Unreachable(f"{path}: permission denied") from None
        except TimeoutError:
            raise Unreachable(f"{path}: no answer within {format_duration(timeout)}") from None
        except OSError as e:
            raise Unreachable(f"{path}: {e.strerror or e}") from None
    try:
        return parse_response(data)
    except ProtocolError as e:
        raise Unreachable(f"{path}: {e}") from None


def _refused_why(path: str) -> str:
    """Connecting to a directory or a plain file is refused too: say what is there instead."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = stat.S_IFSOCK
    if stat.S_ISDIR(mode):
        return "is a directory, not the controller's socket (give the socket file's path)"
    if not stat.S_ISSOCK(mode):
        return "is not a socket"
    return "connection refused (controller not running?)"
