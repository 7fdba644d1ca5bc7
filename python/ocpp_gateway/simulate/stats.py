"""Counters and round-trip latency histograms of a simulated fleet, cheap to update."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field

# Log-spaced latency buckets: bucket i holds [_BASE * _RATIO**i, _BASE * _RATIO**(i+1)).
# 1 µs .. ~120 s at 5 % resolution in 380 buckets.
__all__ = ["FleetSnapshot", "FleetStats", "quantile"]


_BASE = 1e-6
_RATIO = 1.05
_LOG_RATIO = math.log(_RATIO)
_BUCKETS = 380


def _bucket(seconds: float) -> int:
    if seconds <= _BASE:
        return 0
    index = int(math.log(seconds / _BASE) / _LOG_RATIO)
    return index if index < _BUCKETS else _BUCKETS - 1


def quantile(histogram: list[int], q: float) -> float | None:
    """The q-quantile of a latency histogram, as the geometric middle of its bucket.

    Args:
        histogram: bucket counts as held by `FleetStats` (see `FleetSnapshot.latency`).
        q: the quantile, within [0, 1].

    Returns:
        Seconds, or None when the histogram is empty.

    Raises:
        ValueError: q outside [0, 1].
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be within [0, 1]")
    total = sum(histogram)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return float(_BASE * math.exp(_LOG_RATIO * (index + 0.5)))
    return None  # pragma: no cover - unreachable, seen reaches total


def _bump(counts: dict[str, int], key: str, n: int = 1) -> None:
    counts[key] = counts.get(key, 0) + n


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """A copy of the fleet counters at one instant (see `FleetStats` for the meaning)."""

    at: float
    connected: int
    booted: int
    connects: int
    disconnects: int
    connect_failures: int
    handshake_failures: dict[str, int]
    sent: dict[str, int]
    answered: dict[str, int]
    errors: dict[str, int]
    error_codes: dict[str, int]
    timeouts: dict[str, int]
    received_calls: dict[str, int]
    invalid_sent: int
    unmatched: int
    internal_errors: int
    latency: list[int]
    latency_by_action: dict[str, list[int]]

    def latency_quantile(self, q: float, action: str | None = None) -> float | None:
        """The q-quantile of CALL round-trip latency, in seconds.

        Args:
            q: the quantile, within [0, 1].
            action: only calls of this action; None: all calls.

        Returns:
            Seconds, or None when no call (of that action) was answered.
        """
        if action is None:
            return quantile(self.latency, q)
        histogram = self.latency_by_action.get(action)
        return None if histogram is None else quantile(histogram, q)


@dataclass(slots=True)
class FleetStats:
    """Live counters of a fleet, shared by all its charge points (one event loop, no locks).

    Attributes:
        connected: charge points whose WebSocket is open now.
        booted: charge points whose last BootNotification was Accepted, on an open socket.
        connects: successful WebSocket handshakes so far.
        disconnects: sockets that closed after a successful handshake.
        connect_failures: TCP connects or handshakes that failed without an HTTP status.
        handshake_failures: refused handshakes by HTTP status (or "subprotocol" when the
            server did not select the offered subprotocol).
        sent: CALLs sent, by action.
        answered: CALLRESULTs received for our CALLs, by action.
        errors: CALLERRORs received for our CALLs, by action.
        error_codes: CALLERRORs received, by error code.
        timeouts: CALLs that got no answer within the call timeout, by action.
        received_calls: CSMS-initiated CALLs received, by action.
        invalid_sent: deliberately invalid CALLs sent by misbehaving charge points.
        unmatched: CALLRESULT/CALLERROR frames that answered no pending call of ours.
        internal_errors: unexpected exceptions inside the simulator (logged; the charge point
            reconnects). Always 0 unless the simulator has a bug.
    """

    connected: int = 0
    booted: int = 0
    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    handshake_failures: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    error_codes: dict[str, int] = field(default_factory=dict)
    timeouts: dict[str, int] = field(default_factory=dict)
    received_calls: dict[str, int] = field(default_factory=dict)
    invalid_sent: int = 0
    unmatched: int = 0
    internal_errors: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * _BUCKETS)
    latency_by_action: dict[str, list[int]] = field(default_factory=dict)
    _changed: asyncio.Event | None = field(default=None, repr=False, compare=False)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def wait_for(self, predicate: Callable[[FleetStats], bool]) -> None:
        """Wait until `predicate(self)` holds, re-checking whenever a CALL is answered, fails,
        times out, or a connection opens, closes or fails. Bound it with `asyncio.timeout`.

        Args:
            predicate: the condition on these counters.
        """
        while not predicate(self):
            if self._changed is None:
                self._changed = asyncio.Event()
            self._changed.clear()
            await self._changed.wait()

    def record_connected(self, delta: int) -> None:
        """A socket opened (+1) or closed (-1)."""
        self.connected += delta
        if delta > 0:
            self.connects += 1
        else:
            self.disconnects += 1
        self._notify()

    def record_connect_failure(self) -> None:
        """Count one failed TCP connect or handshake without an HTTP status."""
        self.connect_failures += 1
        self._notify()

    def record_sent(self, action: str) -> None:
        """Count one CALL sent."""
        _bump(self.sent, action)

    def record_answer(self, action: str, seconds: float) -> None:
        """Count one CALLRESULT and its round-trip latency."""
        _bump(self.answered, action)
        index = _bucket(seconds)
        self.latency[index] += 1
        histogram = self.latency_by_action.get(action)
        if histogram is None:
            histogram = self.latency_by_action[action] = [0] * _BUCKETS
        histogram[index] += 1
        self._notify()

    def record_error(self, action: str, code: str) -> None:
        """Count one CALLERROR answering our CALL of `action`."""
        _bump(self.errors, action)
        _bump(self.error_codes, code)
        self._notify()

    def record_timeout(self, action: str) -> None:
        """Count one CALL left unanswered."""
        _bump(self.timeouts, action)
        self._notify()

    def record_received_call(self, action: str) -> None:
        """Count one CSMS-initiated CALL."""
        _bump(self.received_calls, action)
        self._notify()

    def record_handshake_failure(self, reason: str) -> None:
        """Count one refused handshake (HTTP status or "subprotocol")."""
        _bump(self.handshake_failures, reason)
        self._notify()

    def total_sent(self) -> int:
        """CALLs sent, all actions."""
        return sum(self.sent.values())

    def total_answered(self) -> int:
        """CALLRESULTs received, all actions."""
        return sum(self.answered.values())

    def total_errors(self) -> int:
        """CALLERRORs received, all actions."""
        return sum(self.errors.values())

    def snapshot(self, at: float = 0.0) -> FleetSnapshot:
        """Copy every counter.

        Args:
            at: a time stamp to keep with the copy (e.g. `loop.time()`), for rates.

        Returns:
            An immutable-by-convention copy, independent of later updates.
        """
        return FleetSnapshot(
            at=at,
            connected=self.connected,
            booted=self.booted,
            connects=self.connects,
            disconnects=self.disconnects,
            connect_failures=self.connect_failures,
            handshake_failures=dict(self.handshake_failures),
            sent=dict(self.sent),
            answered=dict(self.answered),
            errors=dict(self.errors),
            error_codes=dict(self.error_codes),
            timeouts=dict(self.timeouts),
            received_calls=dict(self.received_calls),
            invalid_sent=self.invalid_sent,
            unmatched=self.unmatched,
            internal_errors=self.internal_errors,
            latency=list(self.latency),
            latency_by_action={k: list(v) for k, v in self.latency_by_action.items()},
        )
