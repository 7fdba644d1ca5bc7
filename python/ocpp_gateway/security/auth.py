"""HTTP Basic authentication of charge points (OCPP security profiles 1 and 2).

Design decisions (see README "Security"):
- Hashes are verified in a small dedicated thread pool (hashlib releases the GIL), never on the
  event loop; at most `max_pending_auth` verifications wait at once, more are refused with 503.
- A successful verification is cached for `auth_cache_seconds`, keyed by the charge point id and
  an HMAC of the password under a per-process random key, and tied to the stored hash (changing
  the password in the file invalidates it). A reconnect storm of known charge points then costs
  one HMAC each. Failed verifications are never cached.
- Unknown ids are verified against a dummy hash of the same cost, so that they take as long as a
  wrong password and get the same answer.
- Failures are throttled per charge point id and per source address (token buckets of
  `auth_failures_per_minute`); a throttled handshake gets 429 without any hashing, except when it
  carries a password verified within the cache lifetime (so a live charge point cannot be locked
  out by someone failing on its id).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import time
import tomllib
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from ocpp_gateway.errors import CredentialsError
from ocpp_gateway.security.passwords import (
    PasswordFormatError,
    check_encoded,
    hash_password,
    verify_password,
)

__all__ = [
    "AuthResult",
    "BasicAuthenticator",
    "CredentialsError",
    "FailureThrottle",
    "load_credentials",
    "parse_basic_authorization",
]

log = logging.getLogger(__name__)

_MAX_AUTH_HEADER = 1024  # 40-character passwords and 36-character ids fit many times over


def load_credentials(path: str) -> dict[str, str]:
    """Read a credentials file: a TOML table of charge point id -> encoded password hash.

    Args:
        path: the file.

    Returns:
        The mapping, every hash checked for form (not verified).

    Raises:
        CredentialsError: unreadable file, invalid TOML, a value that is not a string, or a
            malformed hash (the message names the id, never the hash).
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CredentialsError(f"credentials file {path} is not valid TOML: {exc}") from exc
    out: dict[str, str] = {}
    for cp_id, encoded in data.items():
        if not isinstance(encoded, str):
            raise CredentialsError(f"credentials file {path}: {cp_id!r} must map to a hash string")
        try:
            check_encoded(encoded)
        except PasswordFormatError as exc:
            raise CredentialsError(f"credentials file {path}: {cp_id!r}: {exc}") from exc
        out[cp_id] = encoded
    return out


def parse_basic_authorization(header: str | None) -> tuple[str, bytes] | None:
    """Split an `Authorization: Basic ...` header into username and password.

    The password is kept as raw bytes (OCPP 1.6 AuthorizationKeys may be sent as binary).

    Args:
        header: the header value, or None when absent.

    Returns:
        (username, password) or None when the header is absent, not Basic or malformed.
    """
    if header is None or len(header) > _MAX_AUTH_HEADER:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    try:
        username = user.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return username, password


class FailureThrottle:
    """Token buckets of failed attempts keyed by charge point id or source address.

    Args:
        per_minute: failures allowed per key per minute (burst of the same size); 0 disables.
        max_keys: keys remembered at most; the least recently failed are forgotten first.
    """

    def __init__(self, per_minute: int, max_keys: int = 65536) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, key: str, now: float) -> float:
        entry = self._buckets.get(key)
        if entry is None:
            return self._capacity
        tokens, last = entry
        return min(self._capacity, tokens + (now - last) * self._rate)

    def blocked(self, key: str, now: float) -> bool:
        """Args: key; now: monotonic seconds. Returns: True when `key` has no attempts left."""
        return self._capacity > 0 and self._level(key, now) < 1.0

    def record_failure(self, key: str, now: float) -> None:
        """Count one failed attempt for `key`.

        Args:
            key: an id or address (held in memory only, never exported).
            now: monotonic seconds.
        """
        if self._capacity <= 0:
            return
        level = max(0.0, self._level(key, now) - 1.0)
        self._buckets[key] = (level, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


AuthOutcome = Literal["ok", "missing", "malformed", "username_mismatch", "bad_credentials", "busy"]


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of checking one Basic Authorization header.

    Attributes:
        outcome: "ok", or why the check failed (a closed set, safe as a metric label).
    """

    outcome: AuthOutcome

    @property
    def ok(self) -> bool:
        """True when the credentials were accepted."""
        return self.outcome == "ok"


class BasicAuthenticator:
    """Verifies Basic credentials against a credentials file, off the event loop.

    Args:
        path: the credentials file (reloaded when its modification time changes).
        workers: threads verifying hashes.
        cache_seconds: how long a successful verification is remembered; 0 disables the cache.
        max_pending: verifications allowed to wait at once; beyond it, `check` answers "busy".

    Raises:
        CredentialsError: the file cannot be loaded.
    """

    def __init__(
        self, path: str, *, workers: int = 2, cache_seconds: float = 300.0, max_pending: int = 256
    ) -> None:
        self._path = path
        self._creds: Mapping[str, str] = load_credentials(path)
        self._mtime = self._stat()
        self._checked_at = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ocpp-auth")
        self._cache_seconds = cache_seconds
        self._cache: OrderedDict[tuple[str, bytes], tuple[str, float]] = OrderedDict()
        self._cache_max = 100_000
        self._cache_key = secrets.token_bytes(32)
        self._max_pending = max(1, max_pending)
        self._pending = 0
        # Same scheme and cost as the most common stored hash, so unknown ids cost the same.
        self._dummy = hash_password(secrets.token_bytes(20), log2_n=self._typical_cost())

    def _stat(self) -> float | None:
        try:
            return os.stat(self._path).st_mtime
        except OSError:
            return None

    def _typical_cost(self) -> int:
        costs: dict[int, int] = {}
        for encoded in self._creds.values():
            if encoded.startswith("$scrypt$ln="):
                ln = int(encoded.split("$")[2].split(",")[0][3:])
                costs[ln] = costs.get(ln, 0) + 1
        return max(costs, key=lambda k: costs[k]) if costs else 14

    def _maybe_reload(self, now: float) -> None:
        if now - self._checked_at < 1.0:
            return
        self._checked_at = now
        mtime = self._stat()
        if mtime == self._mtime:
            return
        self._mtime = mtime
        try:
            self._creds = load_credentials(self._path)
        except CredentialsError as exc:
            log.error("credentials file not reloaded, keeping the previous one: %s", exc)
            return
        log.info("credentials file reloaded: %d charge points", len(self._creds))

    def cached(self, charge_point_id: str, password: bytes) -> bool:
        """Whether this exact id and password were verified within the cache lifetime.

        Args:
            charge_point_id: the id from the path.
            password: the password as received.

        Returns:
            True on a fresh cache hit for the currently stored hash.
        """
        if self._cache_seconds <= 0:
            return False
        key = (charge_point_id, hmac.digest(self._cache_key, password, hashlib.sha256))
        entry = self._cache.get(key)
        if entry is None:
            return False
        encoded, expires = entry
        if expires < time.monotonic() or self._creds.get(charge_point_id) != encoded:
            del self._cache[key]
            return False
        return True

    async def check(self, charge_point_id: str, header: str | None) -> AuthResult:
        """Check an Authorization header for a charge point id.

        Args:
            charge_point_id: the id from the request path.
            header: the Authorization header value, or None.

        Returns:
            The outcome; unknown ids and wrong passwords both give "bad_credentials" after a hash
            of the same cost.
        """
        now = time.monotonic()
        self._maybe_reload(now)
        parsed = parse_basic_authorization(header)
        if header is None:
            return AuthResult("missing")
        if parsed is None:
            return AuthResult("malformed")
        username, password = parsed
        if not hmac.compare_digest(username.encode(), charge_point_id.encode()):
            return AuthResult("username_mismatch")
        if self.cached(charge_point_id, password):
            return AuthResult("ok")
        stored = self._creds.get(charge_point_id)
        if self._pending >= self._max_pending:
            return AuthResult("busy")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            target = stored if stored is not None else self._dummy
            ok = await loop.run_in_executor(self._pool, _verify_quietly, password, target)
        finally:
            self._pending -= 1
        if ok and stored is not None:
            self._remember(charge_point_id, password, stored)
            return AuthResult("ok")
        return AuthResult("bad_credentials")

    def _remember(self, charge_point_id: str, password: bytes, stored: str) -> None:
        if self._cache_seconds <= 0:
            return
        key = (charge_point_id, hmac.digest(self._cache_key, password, hashlib.sha256))
        self._cache[key] = (stored, time.monotonic() + self._cache_seconds)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_max:
            self._cache.popitem(last=False)

    def close(self) -> None:
        """Stop the verification threads (pending verifications finish first)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _verify_quietly(password: bytes, encoded: str) -> bool:
    try:
        return verify_password(password, encoded)
    except PasswordFormatError:
        return False
