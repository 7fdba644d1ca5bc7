"""Settings of the security layer: authentication, TLS, identity takeover and limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = ["SecurityConfig", "check_security_config"]


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """The `[security]` table of the gateway configuration. Every field has a safe default.

    Attributes:
        credentials_file: TOML table mapping charge point id to a password hash; when set, HTTP
            Basic authentication (OCPP security profile 1/2) is required at the handshake.
        tls_cert, tls_key: PEM files; when both are set, the port serves wss (profile 2/3).
        client_ca: PEM bundle; when set, a client certificate chaining to it is required
            (profile 3) and its subject `client_identity_field` must equal the charge point id.
        client_identity_field: the certificate subject attribute holding the charge point id
            ("CN", or e.g. "serialNumber").
        pinned_profiles: charge point id -> the only security profile (1, 2 or 3) it may use.
        takeover: what a second connection with a live charge point's id does: "ping" (the live
            socket is pinged and replaced only if it fails to answer, by a newcomer that
            authenticated or, when no authentication is configured, by any newcomer), "replace"
            (authenticated newcomers replace at once, others as with "ping"), "refuse".
        takeover_ping_timeout: seconds the live socket has to answer the takeover ping.
        max_message_bytes: largest frame accepted, measured after permessage-deflate inflation
            (larger: close 1009).
        handshake_timeout: seconds from accept to a complete request head, and again for
            authentication.
        idle_timeout: seconds without any frame from a charge point before it is closed (1001).
        ping_interval: seconds between WebSocket pings to each charge point.
        max_connections, max_connections_per_ip: open charge point sockets allowed (0 = no
            limit); beyond them the handshake gets 503 (total) or 429 (per address).
        tls_handshake_rate_per_ip: new TLS connections per second from one address, with five
            seconds' worth of burst (0 = no limit); beyond it the connection is reset before its
            TLS handshake (wss without the PROXY protocol: see `ocpp_gateway.gate`).
        tls_handshakes_in_flight_per_ip, tls_handshakes_in_flight: TLS handshakes in progress
            from one address and in all (0 = no limit); beyond them, reset likewise.
        message_rate, message_burst: token bucket of frames per second from one charge point
            (0 = no limit; results are never limited).
        rate_excess: what a frame over the rate limit gets: "close" (1008) or "callerror" (a
            CALL is answered with a CALLERROR, an invalid frame with its validation answer,
            other frames are dropped; a transaction message closes the socket with 1008
            instead, as it must never get a CALLERROR).
        auth_failures_per_minute: failed authentications allowed per charge point id and per
            source address before further attempts get 429 (0 = no throttling).
        max_outbound_queue_bytes: bytes waiting to be written to one charge point before it is
            closed as a slow reader (1008; 0 = no limit).
        slow_reader_grace: seconds a slow reader gets to read its close frame before its socket
            is aborted.
        tls_allow_rsa_key_exchange: also offer the static-RSA TLS 1.2 suites of the 1.6 security
            whitepaper (no forward secrecy).
        tls_ticket_key_file: 80 bytes (raw, or 160 hex digits) of TLS session ticket keys shared
            by every process and node that should resume each other's sessions; rotate it by
            replacing the file and restarting. Unset: `--workers` share keys the supervisor
            draws at start, a single process keeps its own.
        auth_workers: threads verifying password hashes.
        auth_cache_seconds: how long a successful password verification is remembered (0 = off).
        max_pending_auth: password verifications allowed to wait at once; beyond it, 503.
    """

    credentials_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    client_identity_field: str = "CN"
    pinned_profiles: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    takeover: Literal["ping", "replace", "refuse"] = "ping"
    takeover_ping_timeout: float = 5.0
    max_message_bytes: int = 1024 * 1024
    handshake_timeout: float = 10.0
    idle_timeout: float = 300.0
    ping_interval: float = 60.0
    max_connections: int = 0
    max_connections_per_ip: int = 0
    tls_handshake_rate_per_ip: float = 20.0
    tls_handshakes_in_flight_per_ip: int = 32
    tls_handshakes_in_flight: int = 0
    message_rate: float = 20.0
    message_burst: int = 100
    rate_excess: Literal["callerror", "close"] = "close"
    auth_failures_per_minute: int = 10
    max_outbound_queue_bytes: int = 4 * 1024 * 1024
    slow_reader_grace: float = 10.0
    tls_allow_rsa_key_exchange: bool = False
    tls_ticket_key_file: str | None = None
    auth_workers: int = 2
    auth_cache_seconds: float = 300.0
    max_pending_auth: int = 256

    def __post_init__(self) -> None:
        if not isinstance(self.pinned_profiles, MappingProxyType):
            object.__setattr__(
                self, "pinned_profiles", MappingProxyType(dict(self.pinned_profiles))
            )


def check_security_config(cfg: SecurityConfig) -> list[str]:
    """Find the inconsistent settings of a `[security]` table (without reading any file).

    Args:
        cfg: the settings.

    Returns:
        Every problem, each starting with its key; empty when consistent.
    """
    errors: list[str] = []
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        errors.append("security.tls_cert: tls_cert and tls_key must be set together")
    if cfg.tls_ticket_key_file and not cfg.tls_cert:
        errors.append("security.tls_ticket_key_file: needs security.tls_cert and security.tls_key")
    if cfg.client_ca and not cfg.tls_cert:
        errors.append("security.client_ca: needs security.tls_cert and security.tls_key")
    for cp_id, profile in cfg.pinned_profiles.items():
        key = f"security.pinned_profiles.{cp_id}"
        if profile not in (1, 2, 3):
            errors.append(f"{key}: profile must be 1, 2 or 3")
        elif profile == 3 and not cfg.client_ca:
            errors.append(f"{key}: profile 3 needs client_ca")
        elif profile in (1, 2) and not cfg.credentials_file:
            errors.append(f"{key}: profile {profile} needs credentials_file")
        elif profile == 1 and cfg.tls_cert:
            errors.append(f"{key}: profile 1 is plain ws, not wss")
        elif profile == 2 and not cfg.tls_cert:
            errors.append(f"{key}: profile 2 needs tls_cert")
    for key in (
        "tls_handshake_rate_per_ip",
        "tls_handshakes_in_flight_per_ip",
        "tls_handshakes_in_flight",
    ):
        if getattr(cfg, key) < 0:
            errors.append(f"security.{key}: must be 0 (no limit) or positive")
    if cfg.max_message_bytes <= 0:
        errors.append("security.max_message_bytes: must be positive")
    if cfg.rate_excess not in ("close", "callerror"):
        errors.append('security.rate_excess: must be "close" or "callerror"')
    if cfg.takeover not in ("ping", "replace", "refuse"):
        errors.append('security.takeover: must be "ping", "replace" or "refuse"')
    return errors
