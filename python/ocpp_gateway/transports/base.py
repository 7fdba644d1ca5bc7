"""The transport interface: how the server reaches a backend for one charge point.

A `Transport` is built once per process from the configuration and opens one `Link` per charge
point. A link carries OCPP-J frames as bytes, unchanged, both ways: the server sends the frames a
charge point sent (after validation) and relays what `recv` returns back to the charge point
(after validation again). The server never inspects how a link moves bytes, so a broker
transport (NATS subjects or Redis stream keys per charge point id) plugs in by implementing the
three methods below and registering itself in `ocpp_gateway.transports`.

Version negotiation: the charge point may offer several OCPP versions. `open` gets all of them
that the gateway serves, in the charge point's order of preference, offers them to the backend
(a CSMS picks one in its WebSocket handshake; a backend that is not a WebSocket takes the first
it speaks) and returns a link whose `version` is the one chosen: the charge point is then
accepted with that version, and the connection's Session validates in it.

Rules for implementers:
- `open` raises `TransportUnavailable` when the backend cannot take the charge point; the server
  then refuses the handshake (503) or closes the charge point socket. Never answer on the
  backend's behalf.
- `recv` returns None exactly once the link is closed or lost; the server then closes the charge
  point socket (Local Controller rule: the charge point queues its transaction messages).
- `send` on a lost link raises `TransportUnavailable` (or `ConnectionError`, when the socket
  breaks during the write). `send` and `recv` may be `async def` methods or plain methods
  returning an awaitable (a future, another library's coroutine), which saves a coroutine layer
  per frame on the hot path.
- `close` is idempotent and never raises.
- A link that has no socket of its own to read (a broker link: frames reach it from one shared
  broker connection) may also be a `WakingLink`: the server then parks the link's pump with
  `set_wake` instead of keeping a task waiting in `recv` (an idle task costs ~1.5 KB per charge
  point), and runs it again when the link calls the wake-up.
- A link that routes frames by what they are (a broker link: a CALL goes to a stream, an answer
  to the command it answers) may also be a `FramedLink`: the server then hands it, with each
  frame, the facts the Session already parsed (message type, UniqueId, action, and whether
  the gateway itself answered the backend's frame), so the link parses nothing again, and
  reads from it why it ended (`end_reason`: a link that ends because its charge point
  connected to another node closes the charge point socket as a takeover, 1008).

A transport whose identities are owned cluster-wide (the broker transports: several gateway
nodes share one broker) also implements `SharedOwnership`: before a newcomer may displace
a connection another node holds, the admission asks it, and applies the same takeover rule as
for a connection on this node (DESIGN: a second connection never displaces the first unless it
has authenticated).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, cast, runtime_checkable

from ocpp_gateway.errors import TransportUnavailable

__all__ = [
    "FramedLink",
    "Holder",
    "Link",
    "LinkEnd",
    "SharedOwnership",
    "Transport",
    "TransportUnavailable",
    "WakingLink",
    "as_framed",
    "as_waking",
]

#: How another node holds an identity, as seen by a newcomer's node: "free" (no live node
#: holds it), "live" (a live node holds it; its charge point answered a ping when one was
#: asked for), "unresponsive" (held, but the charge point did not answer the ping).
Holder = Literal["free", "live", "unresponsive"]

#: Why a link ended: "" while open, "closed" (the gateway closed it), "lost" (the backend or
#: the broker went away), "moved" (the charge point's identity is now held by a newer
#: connection, on another node or this one).
LinkEnd = Literal["", "closed", "lost", "moved"]


@runtime_checkable
class Link(Protocol):
    """One charge point's connection to a backend.

    Attributes:
        version: the OCPP version the backend accepted ("ocpp1.6", "ocpp2.0.1", "ocpp2.1").
    """

    version: str

    def send(self, frame: bytes) -> Awaitable[None]:
        """Send one frame to the backend; the frame is handed over when the awaitable is done.

        Args:
            frame: the OCPP-J frame, exactly as the charge point sent it (or built by the core).

        Raises:
            TransportUnavailable: the link is lost.
            ConnectionError: the link broke during the write.
        """
        ...

    def recv(self) -> Awaitable[bytes | None]:
        """Wait for the next frame from the backend.

        Returns:
            An awaitable of the frame's bytes, or of None when the link is closed.
        """
        ...

    async def close(self) -> None:
        """Close the link; idempotent."""
        ...


@runtime_checkable
class WakingLink(Link, Protocol):
    """A link that can wake its reader instead of having one wait in `recv`."""

    def recv_ready(self) -> bool:
        """Returns: True when `recv` would not wait (a frame is queued, or the link ended)."""
        ...

    def set_wake(self, wake: Callable[[], object] | None) -> None:
        """Park the reader until `recv` would not wait.

        Args:
            wake: called once, without arguments, as soon as a frame is queued or the link
                ends (at once when that is already so); None forgets a parked reader.
        """
        ...


@runtime_checkable
class FramedLink(Link, Protocol):
    """A link that takes the Session's facts with each frame and says why it ended."""

    @property
    def end_reason(self) -> LinkEnd:
        """Why the link ended ("" while open)."""
        ...

    def send_frame(
        self, frame: bytes, message_type: int, unique_id: str, action: str, from_gateway: bool
    ) -> Awaitable[None]:
        """Send one frame to the backend, with what the Session found in it (`Link.send`).

        Args:
            frame: the OCPP-J frame, exactly as the charge point sent it (or built by the core).
            message_type: its MessageTypeId (2..6; 0 when the Session could not read it).
            unique_id: its UniqueId ("" when unknown).
            action: its action; for a result, the action of the call it answers ("" when
                unknown).
            from_gateway: the gateway answers the backend's own frame itself (validation
                refused the backend's CALL, a plugin answered it, its UniqueId collided): the
                frame never came from the charge point. The charge point's answers, a CALLERROR
                the Session put in place of an invalid one included, are not.

        Raises:
            TransportUnavailable: the link is lost.
            ConnectionError: the link broke during the write.
        """
        ...


@runtime_checkable
class Transport(Protocol):
    """A backend reachable by the gateway; opens links for charge points.

    Attributes:
        name: the transport's name in the configuration ("upstream", "local", ...).
    """

    name: str

    async def open(self, charge_point_id: str, versions: tuple[str, ...]) -> Link:
        """Open the link of one charge point.

        Args:
            charge_point_id: the decoded identity from the connection path.
            versions: the OCPP versions the charge point offered that the gateway serves, in
                its order of preference (at least one): "ocpp1.6", "ocpp2.0.1", "ocpp2.1".

        Returns:
            An open link; its `version` is one of `versions`.

        Raises:
            TransportUnavailable: the backend refused, speaks none of the versions, or could
                not be reached.
        """
        ...

    async def close(self) -> None:
        """Release what the transport holds (client sessions, journals); idempotent."""
        ...


@runtime_checkable
class SharedOwnership(Protocol):
    """A transport whose charge point identities are owned across gateway nodes."""

    async def held_elsewhere(self, charge_point_id: str, probe: bool, limit: float) -> Holder:
        """Whether another live node holds a connection of this identity.

        Args:
            charge_point_id: the newcomer's identity.
            probe: ask the holding node to ping its charge point (the "ping" takeover rule).
            limit: seconds to wait for the holding node's answer; no answer is "unresponsive".

        Returns:
            The `Holder` state.

        Raises:
            TransportUnavailable: the broker cannot be asked.
        """
        ...


# isinstance() against a runtime-checkable protocol looks up every member each time (about
# 14 µs on Python 3.11, matched or not): the relay asks once per class instead.


@functools.cache
def _offers(cls: type, method: str) -> bool:
    return callable(getattr(cls, method, None))


def as_framed(link: Link) -> FramedLink | None:
    """Args:
        link: an open link.

    Returns:
        The link when it is a `FramedLink` (its class has `send_frame`), else None.
    """
    return cast(FramedLink, link) if _offers(type(link), "send_frame") else None


def as_waking(link: Link) -> WakingLink | None:
    """Args:
        link: an open link.

    Returns:
        The link when it is a `WakingLink` (its class has `set_wake`), else None.
    """
    return cast(WakingLink, link) if _offers(type(link), "set_wake") else None
