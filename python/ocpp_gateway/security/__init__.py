"""Security layer seam: handshake checks, TLS context and per-connection rate limits."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ocpp_gateway.security.config import SecurityConfig

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "HandshakeDecision",
    "RateLimiter",
    "SecurityConfig",
    "SecurityLayer",
    "build_security",
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
    reason: str
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


class SecurityLayer:
    """Applies the `[security]` settings to handshakes (permissive placeholder version).

    Args:
        cfg: the security settings.
        metrics: the gateway's Metrics object.
    """

    def __init__(self, cfg: SecurityConfig, metrics: Any) -> None:
        self.config = cfg
        self._metrics = metrics

    def ssl_context(self) -> ssl.SSLContext | None:
        """Returns: the server TLS context, or None when the port serves plain ws."""
        return None

    async def check_handshake(
        self, request: web.Request, charge_point_id: str
    ) -> HandshakeDecision:
        """Decide whether a WebSocket handshake may proceed.

        Args:
            request: the HTTP upgrade request.
            charge_point_id: the id from the path, already percent-decoded.

        Returns:
            The decision; the server answers refusals with `decision.status` before upgrading.
        """
        return HandshakeDecision(ok=True, status=101, reason="ok", authenticated=False, profile=0)

    def release(self, request: web.Request) -> None:
        """Forget a connection that passed `check_handshake` and has now ended.

        Args:
            request: the same request object given to `check_handshake`.
        """

    def new_rate_limiter(self) -> RateLimiter:
        """Returns: a fresh token bucket for one charge point connection."""
        return RateLimiter(self.config.message_rate, self.config.message_burst)


def build_security(cfg: SecurityConfig, metrics: Any) -> SecurityLayer:
    """Build the security layer of a gateway.

    Args:
        cfg: the `[security]` settings.
        metrics: the gateway's Metrics object (counters for refusals and auth failures).

    Returns:
        A SecurityLayer ready to check handshakes.

    Raises:
        ValueError: inconsistent settings (for example a certificate without its key).
    """
    return SecurityLayer(cfg, metrics)
