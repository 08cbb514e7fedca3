"""The control socket: one JSON request line in, one JSON response line out, per connection.

The socket file is created with mode 0600 (umask set around bind, so there is no window in
which it is wider). Connecting to a unix socket needs write permission on its file, so the
uids of ``control.allowed_uids`` are given it by a POSIX access ACL on the socket (one
``user:UID:rw`` entry each, as ``setfacl -m`` would add; re-applied on reload), and no one
else is. Behind that, every peer's uid is read with SO_PEERCRED: the controller's own uid and
the allowed ones are served, anyone else is answered with an error and dropped. Root is not
special-cased: a controller run as a service user refuses root unless 0 is listed (root can
still signal the process; the socket simply does not offer it a second door).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

from procpilot.controller.protocol import REQUEST_LIMIT, ProtocolError, encode, parse_request

if TYPE_CHECKING:
    from procpilot.controller.protocol import Request, Response

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # a client that connects and says nothing is dropped after this
MAX_CONNECTIONS = 64  # served at once; more are answered "too many" and closed
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class CommandError(Exception):
    """A refused request; the message goes to the client as the error."""


Handler = Callable[["Request"], Awaitable[Any]]


def peer_uid(sock: socket.socket) -> int:
    uid: int = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )[1]
    return uid


def remove_stale(path: str, owner: str = "another controller") -> None:
    """Remove a socket file left by a dead process; refuse to steal a live one."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)
            return
    raise OSError(f"{path}: {owner} is listening on it")


# The kernel's format of the system.posix_acl_access attribute (what setfacl writes): a
# version, then (tag, permissions, id) entries ordered by tag, then id.
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = struct.Struct("<I")
_ACL_ENTRY = struct.Struct("<HHI")
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_NO_ID, _RW = 0xFFFFFFFF, 0o6


def allow_uids(path: str, uids: Collection[int]) -> None:
    """Give exactly these uids, besides the owner, the right to connect to the socket at
    path (user::rw-, user:UID:rw- each, group::---, mask::rw-, other::---); none: mode 0600
    and no ACL. OSError when the file system has no POSIX ACLs."""
    if not uids:
        with contextlib.suppress(OSError):  # ENODATA: there was none
            os.removexattr(path, _ACL_XATTR)
        os.chmod(path, 0o600)
        return
    entries = [(_USER_OBJ, _RW, _NO_ID)]
    entries += [(_USER, _RW, uid) for uid in sorted(set(uids))]
    entries += [(_GROUP_OBJ, 0, _NO_ID), (_MASK, _RW, _NO_ID), (_OTHER, 0, _NO_ID)]
    acl = _ACL_VERSION.pack(2) + b"".join(_ACL_ENTRY.pack(*entry) for entry in entries)
    try:
        os.setxattr(path, _ACL_XATTR, acl)
    except OSError as e:
        raise OSError(
            e.errno, f"{path}: control.allowed_uids needs POSIX ACLs on this file system: "
            f"{e.strerror}"
        ) from None


def bind_socket(path: str) -> socket.socket:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    return sock


class ControlServer:
    """Serves requests from allowed uids with ``handler`` on the running loop."""

    def __init__(self, path: str, handler: Handler, allowed_uids: Collection[int]) -> None:
        self.path = path
        self.handler = handler
        self._allowed_uids = frozenset(allowed_uids)
        self._server: asyncio.Server | None = None
        self._claimed: socket.socket | None = None  # bound, not yet served
        self._open = 0  # connections being served

    @property
    def allowed_uids(self) -> frozenset[int]:
        return self._allowed_uids

    @allowed_uids.setter
    def allowed_uids(self, uids: frozenset[int]) -> None:
        """On reload: the socket's ACL follows (a failure is logged; SO_PEERCRED follows
        regardless, so a uid removed is refused either way)."""
        self._allowed_uids = uids
        if self._server is not None:
            try:
                allow_uids(self.path, uids)
            except OSError as e:
                log.error("control.allowed_uids not applied to the socket file",
                          extra={"fields": {"err": str(e)}})

    def claim(self) -> None:
        """Bind the socket without serving yet: OSError when another controller listens on
        it. Claimed first, before anything a controller of this socket owns is touched."""
        sock = bind_socket(self.path)
        try:
            allow_uids(self.path, self._allowed_uids)
        except OSError:
            sock.close()
            os.unlink(self.path)
            raise
        self._claimed = sock

    async def start(self) -> None:
        if self._claimed is None:
            self.claim()
        sock, self._claimed = self._claimed, None
        assert sock is not None
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=REQUEST_LIMIT
        )

    async def close(self) -> None:
        if self._claimed is not None:
            self._claimed.close()
            self._claimed = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self._server = None

    def allowed(self, uid: int) -> bool:
        return uid == os.getuid() or uid in self.allowed_uids

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open > MAX_CONNECTIONS:  # idle or slow clients must not pile up
                response: Response = {"ok": False, "error": "too many control connections; "
                                       "try again"}
            else:
                response = await self._respond(reader, writer.get_extra_info("socket"))
            writer.write(encode(response))
            await asyncio.wait_for(writer.drain(), REQUEST_TIMEOUT)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._open -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader, sock: socket.socket) -> Response:
        # The request is read even from a refused peer: closing on unread data would make
        # its write fail with EPIPE before it could read why.
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
        except ValueError:
            return {"ok": False, "error": f"request longer than {REQUEST_LIMIT} bytes"}
        except TimeoutError:
            return {"ok": False, "error": f"no request line within {REQUEST_TIMEOUT:.0f}s"}
        uid = peer_uid(sock)
        if not self.allowed(uid):
            log.warning("control request refused", extra={"fields": {"uid": uid}})
            return {"ok": False, "error": f"uid {uid} is not allowed on this control socket"}
        try:
            return {"ok": True, "result": await self.handler(parse_request(line))}
        except (ProtocolError, CommandError) as e:
            return {"ok": False, "error": str(e)}
