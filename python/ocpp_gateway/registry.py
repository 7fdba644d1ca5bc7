"""The live connection state of one gateway process: who is connected, who is being admitted.

`Runtime` holds what is built once from the configuration; the `Registry` holds what changes
with every handshake and close, and only its methods write it: admission reserves an identity
while it decides (`reserve`) and registers the connection it accepted (`admit`), a connection
gives up its identity when it closes (`displace`) and leaves when it ended (`forget`), and the
drain stops admissions (`start_drain`). It is generic in what it holds (`Registered`), so it
depends on no connection class and the connection may depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator, Mapping
from typing import Generic, Protocol, TypeVar

__all__ = ["Gauge", "Registered", "Registry"]


class Registered(Protocol):
    """What the registry needs of a connection."""

    @property
    def charge_point_id(self) -> str:
        """The identity it holds."""

    @property
    def version(self) -> str:
        """Its OCPP version (the gauge it counts in)."""

    def tick(self, now: float) -> None:
        """Run its timers (`Registry.tick`)."""

    def answers_ping(self) -> Awaitable[bool]:
        """Whether it answers a takeover ping."""


class Gauge(Protocol):
    """A gauge child (`prometheus_client`): the connected charge points of one version."""

    def inc(self) -> None:
        """Add one."""

    def dec(self) -> None:
        """Take one away."""


C = TypeVar("C", bound=Registered)


class Registry(Generic[C]):
    """The connections of one process. Read its attributes anywhere; write them through its
    methods only.

    Args:
        connected: the gauge of connected charge points per OCPP version.

    Attributes:
        live: the connection of each identity (the one a newcomer would displace).
        connections: every connection not yet ended (a displaced one until its relay ends).
        reserved: identities between a newcomer's takeover decision and its registration:
            other newcomers of those get 409.
        accepting: False once draining: new handshakes are refused (503).
        drain_progress: while draining, the event set whenever a result went by or a
            connection ended; None otherwise.
    """

    __slots__ = ("_connected", "accepting", "connections", "drain_progress", "live", "reserved")

    def __init__(self, connected: Mapping[str, Gauge]) -> None:
        self._connected = connected
        self.live: dict[str, C] = {}
        self.connections: set[C] = set()
        self.reserved: set[str] = set()
        self.accepting = True
        self.drain_progress: asyncio.Event | None = None

    @contextlib.contextmanager
    def reserve(self, charge_point_id: str) -> Iterator[None]:
        """Hold an identity for a newcomer being admitted, until the block ends.

        Args:
            charge_point_id: the identity.

        Yields:
            Nothing; `admit` inside the block registers the newcomer before the hold ends.
        """
        self.reserved.add(charge_point_id)
        try:
            yield
        finally:
            self.reserved.discard(charge_point_id)

    def holder(self, charge_point_id: str) -> C | None:
        """Args:
            charge_point_id: an identity.

        Returns:
            Its live connection here, or None.
        """
        return self.live.get(charge_point_id)

    def admit(self, conn: C) -> None:
        """Make an accepted connection the live one of its identity.

        Args:
            conn: the connection, its socket prepared.
        """
        self.live[conn.charge_point_id] = conn
        self.connections.add(conn)
        self._connected[conn.version].inc()

    def displace(self, conn: C) -> None:
        """A closing connection gives up its identity (a newcomer may take it at once); it
        stays among `connections` until it ended.

        Args:
            conn: the connection.
        """
        if self.live.get(conn.charge_point_id) is conn:
            del self.live[conn.charge_point_id]

    def forget(self, conn: C) -> None:
        """A connection ended; idempotent.

        Args:
            conn: the connection.
        """
        if conn in self.connections:
            self.connections.discard(conn)
            self._connected[conn.version].dec()
        self.displace(conn)
        self.progress()

    def progress(self) -> None:
        """Wake the drain (a result went by, a connection ended); nothing when not draining."""
        if self.drain_progress is not None:
            self.drain_progress.set()

    def start_drain(self) -> asyncio.Event:
        """Stop admitting charge points.

        Returns:
            The event `progress` sets.
        """
        self.accepting = False
        self.drain_progress = asyncio.Event()
        return self.drain_progress

    def tick(self, now: float) -> None:
        """Run every connection's timers (call expiry, idle close, keep-alive pings).

        Args:
            now: `time.monotonic()`.
        """
        for conn in list(self.connections):
            conn.tick(now)

    async def answers_ping(self, charge_point_id: str) -> bool:
        """Whether this process's connection of an identity answers a takeover ping (asked
        by another gateway node through a broker before it lets a newcomer displace it).

        Args:
            charge_point_id: the identity.

        Returns:
            True while a newcomer of that identity is being admitted here; False when no
            connection holds it here or the ping went unanswered.
        """
        if charge_point_id in self.reserved:
            return True  # a connection of it is being admitted here (its claim is the newest)
        connection = self.live.get(charge_point_id)
        return connection is not None and await connection.answers_ping()
