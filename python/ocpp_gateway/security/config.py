"""Settings of the security layer: authentication, TLS, identity takeover and limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """The `[security]` table of the gateway configuration. Every field has a safe default.

    Attributes:
        credentials_file: TOML table mapping charge point id to a password hash; when set, HTTP
            Basic authentication (OCPP security profile 1/2) is required at the handshake.
        tls_cert, tls_key: PEM files; when both are set, the port serves wss (profile 2/3).
        client_ca: PEM bundle; when set, a client certificate chaining to it is required
            (profile 3) and its subject `client_identity_field` must equal the charge point id.
        pinned_profiles: charge point id -> the only security profile (1, 2 or 3) it may use.
        takeover: what a second connection with a live charge point's id does: "ping" (the live
            socket is pinged and replaced only if it fails to answer), "replace" (authenticated
            newcomers replace at once), "refuse".
    """

    credentials_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    client_identity_field: str = "CN"
    pinned_profiles: dict[str, int] = field(default_factory=dict)
    takeover: Literal["ping", "replace", "refuse"] = "ping"
    takeover_ping_timeout: float = 5.0
    max_message_bytes: int = 1024 * 1024
    handshake_timeout: float = 10.0
    idle_timeout: float = 300.0
    ping_interval: float = 60.0
    max_connections: int = 0
    max_connections_per_ip: int = 0
    message_rate: float = 20.0
    message_burst: int = 100
    rate_excess: Literal["callerror", "close"] = "close"
    auth_failures_per_minute: int = 10
    max_outbound_queue_bytes: int = 4 * 1024 * 1024
