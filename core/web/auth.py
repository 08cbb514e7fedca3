"""HTTP basic auth against bcrypt hashes, with verified credentials remembered."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict

import bcrypt

# bcrypt ignores (bcrypt 4) or refuses (bcrypt 5) anything longer.
BCRYPT_MAX_PASSWORD = 72


class BoundedSet:
    """At most `size` keys; adding to a full set forgets the least recently used key."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: bytes) -> bool:
        with self._lock:
            if key not in self._keys:
                return False
            self._keys.move_to_end(key)
            return True

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: bytes) -> None:
        with self._lock:
            self._keys[key] = None
            self._keys.move_to_end(key)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)


def parse_basic_authorization(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) from an Authorization header, or None if it is not valid Basic."""
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        return (user.decode(), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


class BasicAuth:
    """Checks Basic credentials against bcrypt hashes, remembering the ones that passed.

    Scrapes repeat the same credentials every few seconds and bcrypt is slow on purpose, so
    verified credentials are cached under an HMAC with a per-process random key: the cache
    never holds the password, and a key includes the hash, so a changed hash misses.
    """

    def __init__(self, users: dict[str, str], cache_size: int = 1024) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._verified = BoundedSet(cache_size)
        self._cache_key_secret = secrets.token_bytes(32)
        # Unknown users are checked against the costliest configured hash (and refused
        # whatever the result), so they take as long as known ones. No hash is made here:
        # start-up stays fast whatever the cost.
        self._decoy = max(self._users.values(), key=lambda hashed: int(hashed[4:6]))

    def check(self, authorization: str | None) -> bool:
        credentials = parse_basic_authorization(authorization)
        if credentials is None:
            return False
        user, password = credentials
        if len(password) > BCRYPT_MAX_PASSWORD:
            return False
        hashed = self._users.get(user)
        if hashed is None:
            bcrypt.checkpw(password, self._decoy)
            return False
        key = self._cache_key(user.encode(), hashed, password)
        if key in self._verified:
            return True
        if not bcrypt.checkpw(password, hashed):
            return False
        self._verified.add(key)
        return True

    def _cache_key(self, *parts: bytes) -> bytes:
        mac = hmac.new(self._cache_key_secret, digestmod=hashlib.sha256)
        for part in parts:  # length-prefixed, so that parts cannot run into each other
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return mac.digest()
