"""Security layer seam: handshake checks, TLS context and per-connection rate limits.

The server calls `build_security(cfg, metrics)` once, serves `ssl_context()`, asks
`check_handshake(request, charge_point_id)` before every upgrade (answering refusals with
`decision.status`), calls `release(request)` when a connection that passed ends, and gives each
connection a `new_rate_limiter()`.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from aiohttp import web

from ocpp_gateway.reasons import HandshakeReason, SecurityRefusal
from ocpp_gateway.security.auth import (
    BasicAuthenticator,
    CredentialsError,
    FailureThrottle,
    load_credentials,
    parse_basic_authorization,
)
from ocpp_gateway.security.config import SecurityConfig, check_security_config
from ocpp_gateway.security.tls import build_server_context, peer_identity, read_ticket_keys

if TYPE_CHECKING:
    from ocpp_gateway.metrics import Metrics

log = logging.getLogger(__name__)

_COUNTED: web.RequestKey[str] = web.RequestKey("ocpp_gateway.security.counted_address", str)

__all__ = [
    "CredentialsError",
    "HandshakeDecision",
    "RateLimiter",
    "SecurityConfig",
    "SecurityLayer",
    "build_security",
    "check_security",
]


@dataclass(frozen=True, slots=True)
class HandshakeDecision:
    """The verdict on one WebSocket handshake, taken before the upgrade.

    Attributes:
        ok: True when the upgrade may proceed.
        status: HTTP status to answer with when `ok` is False (401, 403, 429, 503).
        reason: a label from a closed set, used in logs and metrics; never a secret.
        authenticated: True when the peer proved its identity (password or client certificate).
        profile: the OCPP security profile the connection used (0 = none, 1, 2 or 3).
    """

    ok: bool
    status: int
    reason: HandshakeReason
    authenticated: bool
    profile: int


class RateLimiter:
    """A token bucket for the frames of one charge point connection.

    Args:
        rate: tokens added per second; 0 or less disables the limit.
        burst: bucket capacity (frames allowed back to back).
    """

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(max(burst, 1))
        self._tokens = self._burst
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        """Take one token.

        Args:
            now: a monotonic time in seconds.

        Returns:
            True when the frame is within the rate, False when it exceeds it.
        """
        if self._rate <= 0:
            return True
        if self._last is not None and now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now if self._last is None else max(now, self._last)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


# The refusal of each failed password check (AuthOutcome), a handshakes_refused_total reason.
_AUTH_REFUSALS: Mapping[str, SecurityRefusal] = MappingProxyType(
    {
        "missing": "auth_missing",
        "malformed": "auth_malformed",
        "username_mismatch": "username_mismatch",
        "bad_credentials": "bad_credentials",
    }
)


def _ok(authenticated: bool, profile: int) -> HandshakeDecision:
    return HandshakeDecision(
        ok=True, status=101, reason="ok", authenticated=authenticated, profile=profile
    )


def _refuse(status: int, reason: SecurityRefusal) -> HandshakeDecision:
    return HandshakeDecision(ok=False, status=status, reason=reason, authenticated=False, profile=0)


class SecurityLayer:
    """Applies the `[security]` settings to handshakes.

    Refusal reasons (a closed set, used as metric labels): "capacity" (503),
    "too_many_connections_from_address" (429), "auth_throttled" (429), "auth_busy" (503),
    "auth_missing", "auth_malformed", "username_mismatch", "bad_credentials",
    "client_cert_required", "cert_identity_mismatch", "profile_pinned" (all 401).

    Args:
        cfg: the security settings.
        metrics: the gateway's Metrics object, or None (nothing counted).

    Raises:
        ValueError: inconsistent settings.
        CredentialsError: the credentials file cannot be loaded.
        OSError, ssl.SSLError: TLS files cannot be loaded.
    """

    def __init__(self, cfg: SecurityConfig, metrics: Metrics | None) -> None:
        errors = check_security_config(cfg)
        if errors:
            raise ValueError("; ".join(errors))
        self.config = cfg
        self._metrics = metrics
        self._tls = bool(cfg.tls_cert)
        self._ssl: ssl.SSLContext | None = None
        if cfg.tls_cert and cfg.tls_key:
            self._ssl = build_server_context(
                cfg.tls_cert,
                cfg.tls_key,
                cfg.client_ca,
                allow_rsa_key_exchange=cfg.tls_allow_rsa_key_exchange,
                client_cert_required=cfg.credentials_file is None,
                ticket_keys=read_ticket_keys(cfg.tls_ticket_key_file)
                if cfg.tls_ticket_key_file
                else None,
            )
        self._auth: BasicAuthenticator | None = None
        if cfg.credentials_file:
            self._auth = BasicAuthenticator(
                cfg.credentials_file,
                workers=cfg.auth_workers,
                cache_seconds=cfg.auth_cache_seconds,
                max_pending=cfg.max_pending_auth,
            )
        self._id_failures = FailureThrottle(cfg.auth_failures_per_minute)
        self._address_failures = FailureThrottle(cfg.auth_failures_per_minute)
        self._total = 0
        self._per_address: dict[str, int] = {}

    @property
    def connections(self) -> int:
        """Connections that passed `check_handshake` and were not released yet."""
        return self._total

    def ssl_context(self) -> ssl.SSLContext | None:
        """Returns: the server TLS context, or None when the port serves plain ws."""
        return self._ssl

    async def check_handshake(
        self, request: web.Request, charge_point_id: str
    ) -> HandshakeDecision:
        """Decide whether a WebSocket handshake may proceed.

        A decision with `ok` counts the connection against the limits until `release(request)`.

        Args:
            request: the HTTP upgrade request.
            charge_point_id: the id from the path, already percent-decoded.

        Returns:
            The decision; the server answers refusals with `decision.status` before upgrading.
        """
        cfg = self.config
        address = request.remote or "unknown"
        if cfg.max_connections and self._total >= cfg.max_connections:
            return self._refused(503, "capacity")
        if cfg.max_connections_per_ip and (
            self._per_address.get(address, 0) >= cfg.max_connections_per_ip
        ):
            return self._refused(429, "too_many_connections_from_address")
        decision = await self._authenticate(request, charge_point_id, address)
        if decision.ok:
            # Counted after the awaits above, so concurrent handshakes cannot overshoot much;
            # re-check to keep the limits exact.
            if cfg.max_connections and self._total >= cfg.max_connections:
                return self._refused(503, "capacity")
            if cfg.max_connections_per_ip and (
                self._per_address.get(address, 0) >= cfg.max_connections_per_ip
            ):
                return self._refused(429, "too_many_connections_from_address")
            self._total += 1
            self._per_address[address] = self._per_address.get(address, 0) + 1
            request[_COUNTED] = address
        return decision

    async def _authenticate(
        self, request: web.Request, charge_point_id: str, address: str
    ) -> HandshakeDecision:
        cfg = self.config
        pinned = cfg.pinned_profiles.get(charge_point_id)
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        peercert = ssl_object.getpeercert() if ssl_object is not None else None
        if peercert:
            # The TLS layer already verified the chain against client_ca.
            if peer_identity(peercert, cfg.client_identity_field) != charge_point_id:
                return self._auth_failed(charge_point_id, address, "cert_identity_mismatch")
            if pinned is not None and pinned != 3:
                return self._auth_failed(charge_point_id, address, "profile_pinned")
            return _ok(True, 3)
        if pinned == 3:
            return self._auth_failed(charge_point_id, address, "profile_pinned")
        if self._auth is not None:
            return await self._check_password(request, charge_point_id, address, pinned)
        if cfg.client_ca:
            return self._auth_failed(charge_point_id, address, "client_cert_required")
        return _ok(False, 0)

    async def _check_password(
        self, request: web.Request, charge_point_id: str, address: str, pinned: int | None
    ) -> HandshakeDecision:
        assert self._auth is not None
        header = request.headers.get("Authorization")
        now = time.monotonic()
        if self._id_failures.blocked(charge_point_id, now) or self._address_failures.blocked(
            address, now
        ):
            parsed = _password_of(header, charge_point_id)
            if parsed is None or not self._auth.cached(charge_point_id, parsed):
                return self._refused(429, "auth_throttled", auth_reason="throttled")
        result = await self._auth.check(charge_point_id, header)
        if result.outcome == "busy":
            return self._refused(503, "auth_busy", auth_reason="busy")
        if not result.ok:
            return self._auth_failed(charge_point_id, address, _AUTH_REFUSALS[result.outcome])
        profile = 2 if self._tls else 1
        if pinned is not None and pinned != profile:
            return self._auth_failed(charge_point_id, address, "profile_pinned")
        return _ok(True, profile)

    def _auth_failed(
        self, charge_point_id: str, address: str, reason: SecurityRefusal
    ) -> HandshakeDecision:
        now = time.monotonic()
        self._id_failures.record_failure(charge_point_id, now)
        self._address_failures.record_failure(address, now)
        return self._refused(401, reason, auth_reason=reason)

    def _refused(
        self, status: int, reason: SecurityRefusal, auth_reason: str | None = None
    ) -> HandshakeDecision:
        if auth_reason is not None:
            self._count("auth_failures", reason=auth_reason)
        log.info("handshake refused: %s (HTTP %d)", reason, status)
        return _refuse(status, reason)

    def _count(self, name: str, **labels: str) -> None:
        collector = getattr(self._metrics, name, None)
        if collector is not None:
            collector.labels(**labels).inc()

    def release(self, request: web.Request) -> None:
        """Forget a connection that passed `check_handshake` and has now ended. Idempotent.

        Args:
            request: the same request object given to `check_handshake`.
        """
        address = request.get(_COUNTED)
        if address is None:
            return
        del request[_COUNTED]
        self._total -= 1
        left = self._per_address.get(address, 1) - 1
        if left > 0:
            self._per_address[address] = left
        else:
            self._per_address.pop(address, None)

    def new_rate_limiter(self) -> RateLimiter:
        """Returns: a fresh token bucket for one charge point connection."""
        return RateLimiter(self.config.message_rate, self.config.message_burst)

    def close(self) -> None:
        """Release the password verification threads."""
        if self._auth is not None:
            self._auth.close()


def _password_of(header: str | None, charge_point_id: str) -> bytes | None:
    parsed = parse_basic_authorization(header)
    if parsed is None or parsed[0] != charge_point_id:
        return None
    return parsed[1]


def check_security(cfg: SecurityConfig) -> list[str]:
    """Everything `build_security` would refuse, as messages: inconsistent settings, a
    credentials file that cannot be loaded, TLS files that cannot be loaded.

    Args:
        cfg: the `[security]` settings.

    Returns:
        Every problem, each starting with its key; empty when the layer can be built.
    """
    errors = check_security_config(cfg)
    if errors:
        return errors
    if cfg.credentials_file:
        try:
            load_credentials(cfg.credentials_file)
        except CredentialsError as exc:
            errors.append(f"security.credentials_file: {exc}")
    if cfg.tls_cert and cfg.tls_key:
        try:
            build_server_context(
                cfg.tls_cert,
                cfg.tls_key,
                cfg.client_ca,
                allow_rsa_key_exchange=cfg.tls_allow_rsa_key_exchange,
                client_cert_required=cfg.credentials_file is None,
                ticket_keys=read_ticket_keys(cfg.tls_ticket_key_file)
                if cfg.tls_ticket_key_file
                else None,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            errors.append(f"security.tls_cert: cannot load the TLS files: {exc}")
    return errors


def build_security(cfg: SecurityConfig, metrics: Metrics | None) -> SecurityLayer:
    """Build the security layer of a gateway.

    Args:
        cfg: the `[security]` settings.
        metrics: the gateway's Metrics (auth failures are counted there), or None.

    Returns:
        A SecurityLayer ready to check handshakes.

    Raises:
        ValueError: inconsistent settings (for example a certificate without its key).
        CredentialsError: the credentials file cannot be loaded.
        OSError, ssl.SSLError: TLS files cannot be loaded.
    """
    return SecurityLayer(cfg, metrics)
