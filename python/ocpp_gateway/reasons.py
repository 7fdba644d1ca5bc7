"""The closed sets of reasons: why a handshake was refused, why a connection ended.

Each is a metric label (`handshakes_refused_total{reason}`, `connections_closed_total{reason}`)
and a log field, so each is a `Literal`: a new reason is added here, where mypy and the README's
list (checked by a test) see it.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["CloseReason", "HandshakeReason", "RefusalReason", "SecurityRefusal"]

CloseReason = Literal[
    "charge_point_closed",
    "upstream_lost",
    "internal_error",
    "idle_timeout",
    "message_too_big",
    "rate_limited",
    "slow_reader",
    "takeover",
    "shutdown",
]
"""Why a charge point connection ended (`connections_closed_total{reason}`)."""

SecurityRefusal = Literal[
    "capacity",
    "too_many_connections_from_address",
    "auth_throttled",
    "auth_busy",
    "auth_missing",
    "auth_malformed",
    "username_mismatch",
    "bad_credentials",
    "client_cert_required",
    "cert_identity_mismatch",
    "profile_pinned",
]
"""The security layer's refusals of a handshake (a subset of `RefusalReason`)."""

HandshakeReason = Literal["ok", SecurityRefusal]
"""The security layer's verdict on a handshake: "ok" or why it refuses it."""

RefusalReason = Literal[
    "bad_path",
    "draining",
    "not_websocket",
    "subprotocol",
    "handshake_timeout",
    "takeover",
    "plugin",
    "plugin_error",
    "upstream_unavailable",
    "client_gone",
    "bad_request",
    "internal_error",
    "tls_address_rate",
    "tls_address_in_flight",
    "tls_in_flight",
    SecurityRefusal,
]
"""Why a handshake was refused or its socket closed at once (`handshakes_refused_total`)."""
