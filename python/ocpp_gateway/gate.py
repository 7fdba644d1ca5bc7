"""Admission before the TLS handshake: limits that refuse a connection before its CPU is spent.

A TLS handshake costs the gateway about a millisecond of CPU, so opening TLS connections is the
cheapest way to starve it. On a port serving wss (without the PROXY protocol), `GatedSite`
accepts each TCP connection itself and asks a `HandshakeGate` before any TLS byte is read:

- new TLS connections per second from one address (a token bucket, five seconds' worth of
  burst): a client reconnecting as fast as it can;
- TLS handshakes in progress from one address and in all: a slowloris that stops mid-handshake
  holds a slot only until the handshake timeout.

A refused connection is reset at once (no TLS alert, no HTTP answer: nothing to spend CPU on)
and counted in `ocpp_gateway_handshakes_refused_total{reason}` as `tls_address_rate`,
`tls_address_in_flight` or `tls_in_flight`. An admitted one gets uvloop's (or asyncio's) own TLS
through `loop.connect_accepted_socket`, exactly as a `TCPSite` would give it. Behind a load
balancer that sends the PROXY protocol, the balancer is the only peer and these limits belong
there.

`HandshakeGate` is plain code (addresses and times in, decisions out), tested by tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ocpp_gateway.security.config import SecurityConfig

__all__ = ["GateLimits", "GatedSite", "HandshakeGate"]

log = logging.getLogger("ocpp_gateway.gate")

_BURST_SECONDS = 5.0
_PRUNE_AT = 4096  # addresses remembered before idle ones are forgotten
_ACCEPT_BATCH = 64  # connections accepted per readiness event
_ACCEPT_RETRY = 1.0  # seconds without accepting after accept() failed (as asyncio does)


@dataclass(frozen=True, slots=True)
class GateLimits:
    """Limits of a `HandshakeGate` (0 = no limit).

    Attributes:
        rate_per_address: new TLS connections per second from one address (burst: five
            seconds' worth).
        in_flight_per_address: handshakes in progress from one address.
        in_flight: handshakes in progress in all.
    """

    rate_per_address: float = 0.0
    in_flight_per_address: int = 0
    in_flight: int = 0

    def __bool__(self) -> bool:
        return bool(self.rate_per_address or self.in_flight_per_address or self.in_flight)

    @classmethod
    def of(cls, security: SecurityConfig) -> GateLimits:
        """The limits of a `[security]` table.

        Args:
            security: the settings.

        Returns:
            The limits.
        """
        return cls(
            security.tls_handshake_rate_per_ip,
            security.tls_handshakes_in_flight_per_ip,
            security.tls_handshakes_in_flight,
        )


class _Address:
    __slots__ = ("in_flight", "stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.in_flight = 0


class HandshakeGate:
    """Decides, per accepted connection, whether its TLS handshake may start.

    Args:
        limits: the limits.
    """

    def __init__(self, limits: GateLimits) -> None:
        self.limits = limits
        self._burst = max(1.0, limits.rate_per_address * _BURST_SECONDS)
        self._addresses: dict[str, _Address] = {}
        self._prune_at = _PRUNE_AT
        self.in_flight = 0

    def admit(self, address: str, now: float) -> str | None:
        """Ask for one handshake from `address`; on None it is admitted and must be `done`.

        Args:
            address: the peer's address.
            now: a monotonic time in seconds.

        Returns:
            None when admitted, else the refusal's reason (`tls_in_flight`,
            `tls_address_in_flight`, `tls_address_rate`).
        """
        limits = self.limits
        if limits.in_flight and self.in_flight >= limits.in_flight:
            return "tls_in_flight"
        entry = self._addresses.get(address)
        if entry is None:
            if len(self._addresses) >= self._prune_at:
                self._prune(now)
            entry = self._addresses[address] = _Address(self._burst, now)
        if limits.in_flight_per_address and entry.in_flight >= limits.in_flight_per_address:
            return "tls_address_in_flight"
        if limits.rate_per_address:
            entry.tokens = min(
                self._burst, entry.tokens + (now - entry.stamp) * limits.rate_per_address
            )
            entry.stamp = now
            if entry.tokens < 1.0:
                return "tls_address_rate"
            entry.tokens -= 1.0
        entry.in_flight += 1
        self.in_flight += 1
        return None

    def done(self, address: str) -> None:
        """The handshake of an admitted connection from `address` ended (either way).

        Args:
            address: the address given to `admit`.
        """
        self.in_flight = max(0, self.in_flight - 1)
        entry = self._addresses.get(address)
        if entry is not None and entry.in_flight > 0:
            entry.in_flight -= 1

    def addresses(self) -> int:
        """How many addresses the gate remembers (bounded: idle ones are forgotten)."""
        return len(self._addresses)

    def _prune(self, now: float) -> None:
        rate = self.limits.rate_per_address
        for address in [
            address
            for address, entry in self._addresses.items()
            if entry.in_flight == 0
            and (not rate or entry.tokens + (now - entry.stamp) * rate >= self._burst)
        ]:
            del self._addresses[address]
        # Still many (all busy): remember more before the next pass, so it is not paid per call.
        self._prune_at = max(_PRUNE_AT, 2 * len(self._addresses))


class _Listener:
    """What aiohttp's `BaseSite` needs of a server: its sockets, close, wait_closed."""

    def __init__(self, sock: socket.socket, on_close: Callable[[], None]) -> None:
        self.sockets = [sock]
        self._on_close = on_close
        self._closed = asyncio.Event()

    def close(self) -> None:
        if not self._closed.is_set():
            self._on_close()
            self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def is_serving(self) -> bool:
        return not self._closed.is_set()


class GatedSite(web.TCPSite):
    """A TLS site that asks a `HandshakeGate` for every connection before its handshake.

    Args:
        runner: the application runner.
        host, port: where to listen.
        ssl_context: the port's TLS.
        gate: the gate.
        handshake_timeout: seconds a TLS handshake may take.
        on_refused: called with the reason of every refused connection (a metric).
        reuse_port: bind with SO_REUSEPORT.
        backlog: the listen backlog.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext,
        gate: HandshakeGate,
        handshake_timeout: float,
        on_refused: Callable[[str], None],
        reuse_port: bool | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, host, port, reuse_port=reuse_port, backlog=backlog)
        self._tls = ssl_context
        self.gate = gate
        self._timeout = handshake_timeout if handshake_timeout > 0 else 10.0
        self._on_refused = on_refused
        self._sock: socket.socket | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; TLS handshakes start only for admitted connections."""
        await web.BaseSite.start(self)
        family = socket.AF_INET6 if ":" in (self._host or "") else socket.AF_INET
        sock = socket.create_server(
            (self._host or "0.0.0.0", self._port),
            family=family,
            backlog=self._backlog,
            reuse_port=bool(self._reuse_port),
        )
        sock.setblocking(False)
        self._sock = sock
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._accept)
        self._server = _Listener(sock, self._close)  # type: ignore[assignment]

    def _close(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self._sock = None
        asyncio.get_running_loop().remove_reader(sock.fileno())
        sock.close()
        for task in self._pending:
            task.cancel()

    def _accept(self) -> None:
        sock = self._sock
        if sock is None:
            return
        loop = asyncio.get_running_loop()
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: leave the rest in the backlog for a second
                log.warning("accept failed", extra={"error": str(exc)})
                loop.remove_reader(sock.fileno())
                loop.call_later(_ACCEPT_RETRY, self._resume_accepting, sock)
                return
            address = str(peer[0]) if isinstance(peer, tuple) else "unknown"
            reason = self.gate.admit(address, loop.time())
            if reason is not None:
                _reset(conn)
                self._on_refused(reason)
                continue
            conn.setblocking(False)
            task = loop.create_task(self._handshake(conn, address))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _resume_accepting(self, sock: socket.socket) -> None:
        if self._sock is sock:  # not closed meanwhile
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept)

    async def _handshake(self, conn: socket.socket, address: str) -> None:
        server: Any = self._runner.server
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                server, conn, ssl=self._tls, ssl_handshake_timeout=self._timeout
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, asyncio.CancelledError):
            # A failed, timed-out or cancelled handshake: the loop closed its transport, which
            # owns the socket now (closing it here too could close a reused descriptor).
            pass
        finally:
            self.gate.done(address)


def _reset(conn: socket.socket) -> None:
    """Close with a TCP reset: nothing is read, written or kept in TIME_WAIT."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
