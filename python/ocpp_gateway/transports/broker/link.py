"""One charge point's link through a broker, its command queue, and the table of links.

Synchronous: nothing here awaits but `recv` and what the link hands to its host (publish a
frame, give up its ownership). Time comes in as `now` (`time.monotonic()`): a command's
deadline is checked by `tick(now)`, called by the process timer, like a connection's timers.

A `BrokerLink` keeps:
- the frames waiting for `recv` (answers to the charge point's calls, and the one command in
  flight), handed over in arrival order;
- the command queue: one command in flight per charge point, at most `command_queue` more
  waiting (the next one is answered busy), each with a deadline once in flight (then: timeout);
- its connection epoch (the broker's ownership revision); frames stamped with another epoch are
  dropped by the host before they get here.

An idle link holds no task: it is a `WakingLink` (`ocpp_gateway.transports.base`), so the relay
parks its pump with `set_wake` instead of a task waiting in `recv`, and the link calls the
wake-up once a frame is queued or the link ended. Its frame queue exists only while frames wait.
It is a `FramedLink` too: the relay hands it the Session's facts with each frame, so it routes
a CALL to the broker and an answer to its command without reading the frame again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from time import monotonic
from typing import Any, Protocol

import orjson

from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.transports.base import LinkEnd
from ocpp_gateway.transports.broker.contract import CommandStatus, answer_status, identity_token
from ocpp_gateway.transports.broker.metrics import BrokerStats

__all__ = ["BrokerLink", "Command", "LinkHost", "LinkTable"]

log = logging.getLogger("ocpp_gateway.transports.broker.link")


class _Done:
    """An awaitable that is done at once (what `send_frame` returns when nothing waits)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that ends at once


_DONE = _Done()


@dataclass(slots=True, eq=False)
class Command:
    """A backend's CALL to a charge point, waiting in or travelling through a link.

    Attributes:
        unique_id: the CALL's UniqueId.
        action: the CALL's action.
        frame: the CALL's bytes, forwarded unchanged.
        reply: where the host sends the answer (a NATS inbox, a Redis list key).
        command_id: the backend's own id for it, echoed back.
        deadline: when it times out (`time.monotonic()`), once in flight; 0 before.
        delivered: True once `recv` handed it to the relay.
    """

    unique_id: str
    action: str
    frame: bytes
    reply: str
    command_id: str = ""
    deadline: float = 0.0
    delivered: bool = False


class LinkHost(Protocol):
    """What a broker transport does for its links."""

    stats: BrokerStats
    command_timeout: float
    command_queue: int

    async def publish_frame(
        self, link: BrokerLink, frame: bytes, message_type: int, unique_id: str, action: str
    ) -> None:
        """Hand one charge point frame to the broker; return once it acknowledged it.

        Raises:
            TransportUnavailable: the broker did not take it in time.
        """
        ...

    def answer_command(
        self, link: BrokerLink, command: Command, status: CommandStatus, frame: bytes
    ) -> None:
        """Send a command's outcome to its reply address (in the background)."""
        ...

    async def release(self, link: BrokerLink) -> None:
        """Forget a closed link and give up its ownership (if it still holds it)."""
        ...


class BrokerLink:
    """One charge point's link through a broker (see the module docstring).

    Args:
        host: the transport.
        charge_point_id: the identity.
        token: `identity_token(charge_point_id)`.
        version: the OCPP version of the link (the first the charge point offered).
    """

    __slots__ = (
        "_ended",
        "_frames",
        "_host",
        "_inflight",
        "_queue",
        "_waiter",
        "_wake",
        "charge_point_id",
        "end_reason",
        "epoch",
        "published",
        "seen_revision",
        "token",
        "version",
        "wire",
    )

    def __init__(self, host: LinkHost, charge_point_id: str, token: str, version: str) -> None:
        self._host = host
        self.charge_point_id = charge_point_id
        self.token = token
        self.version = version
        self.epoch = 0  # set once ownership is claimed
        self.seen_revision = 0  # newest ownership revision seen while claiming
        # Frames handed to the broker on this connection: the last part of the dedup key, so
        # that the gateway's own publish retries collapse and a charger's retry never does.
        self.published = 0
        # Exists only while frames wait (an empty deque is several times a None's size).
        self._frames: deque[bytes] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wake: Callable[[], object] | None = None  # the parked pump's wake-up (set_wake)
        self._ended = False
        self.end_reason: LinkEnd = ""
        self._inflight: Command | None = None
        self._queue: deque[Command] | None = None
        # What the broker client encoded once for this link (the metadata fixed per
        # connection), built on the first frame it publishes; the client's own type.
        self.wire: Any = None

    @property
    def ended(self) -> bool:
        """True once the link was closed or lost."""
        return self._ended

    @property
    def pending_commands(self) -> int:
        """Commands in flight or waiting on this link."""
        return (self._inflight is not None) + len(self._queue or ())

    # -- the relay's side ---------------------------------------------------------------------

    def send_frame(
        self, frame: bytes, message_type: int, unique_id: str, action: str, from_gateway: bool
    ) -> Awaitable[None]:
        """Take one frame from the relay (`FramedLink`): a charge point CALL (or SEND) is
        published and acknowledged by the broker once the awaitable is done; an answer to a
        command goes to the command's reply address. A plain method returning the host's
        awaitable: no coroutine of its own per frame.

        Args:
            frame: the frame, as the Session passed it.
            message_type: its MessageTypeId (0: the Session could not tell; read here).
            unique_id: its UniqueId.
            action: its action (a CALL's: the subject's action token).
            from_gateway: the gateway answered the backend's command itself (then: rejected).

        Returns:
            An awaitable, done once the frame is handed over.

        Raises:
            TransportUnavailable: the link is lost (at once), or the broker did not acknowledge
                in time (from the awaitable).
        """
        if self._ended:
            raise TransportUnavailable("broker link closed")
        if message_type == 2 or message_type == 6:
            self.published += 1
            return self._host.publish_frame(self, frame, message_type, unique_id, action)
        if 3 <= message_type <= 5:
            self.answered(unique_id, message_type, frame, from_gateway, monotonic())
        elif message_type == 0:
            return self.send(frame)
        else:
            self._unroutable()
        return _DONE

    async def send(self, frame: bytes) -> None:
        """Take one frame without the Session's facts (`Link.send`): its head is read here.

        Args:
            frame: the frame.

        Raises:
            TransportUnavailable: as `send_frame`.
        """
        try:
            message = orjson.loads(frame)
            message_type = int(message[0])
            unique_id = str(message[1])
            action = message[2] if len(message) > 2 and isinstance(message[2], str) else ""
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError, ValueError):
            message_type, unique_id, action = 0, "", ""
        if message_type == 0:
            if self._ended:
                raise TransportUnavailable("broker link closed")
            self._unroutable()
            return
        await self.send_frame(frame, message_type, unique_id, action, False)

    def _unroutable(self) -> None:
        # Only possible with validation off: nothing to route it by.
        log.warning("unroutable frame dropped", extra={"charge_point_id": self.charge_point_id})

    async def recv(self) -> bytes | None:
        """Returns: the next frame for the charge point, or None once the link ended."""
        while True:
            frames = self._frames
            if frames:
                frame = frames.popleft()
                if not frames:
                    self._frames = None
                inflight = self._inflight
                if inflight is not None and inflight.frame is frame:
                    inflight.delivered = True
                return frame
            if self._ended:
                return None
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def recv_ready(self) -> bool:
        """Returns: True when `recv` would not wait (a frame is queued, or the link ended)."""
        return bool(self._frames) or self._ended

    def set_wake(self, wake: Callable[[], object] | None) -> None:
        """Park the reader: call `wake` once, as soon as `recv` would not wait (a frame is
        queued or the link ended); at once when that is already so.

        Args:
            wake: called without arguments, at most once per `set_wake`; None forgets it.
        """
        if wake is not None and (self._frames or self._ended):
            self._wake = None
            wake()
        else:
            self._wake = wake

    def _wake_reader(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake()

    async def close(self) -> None:
        """Close the link (idempotent): queued commands are answered, ownership given up."""
        if not self._ended:
            self.lose("closed")
            await self._host.release(self)

    # -- the transport's side -----------------------------------------------------------------

    def deliver(self, frame: bytes) -> None:
        """Queue a frame for `recv` (a backend's answer to a charge point CALL).

        Args:
            frame: the backend's frame.
        """
        if self._ended:
            return
        frames = self._frames
        if frames is None:
            frames = self._frames = deque()
        frames.append(frame)
        self._wake_reader()

    def lose(self, reason: LinkEnd = "lost") -> None:
        """End the link: `recv` returns None; waiting commands are answered offline (never
        sent), the one in flight timeout (outcome unknown).

        Args:
            reason: kept in `end_reason` for the relay ("lost", "moved", "closed").
        """
        if self._ended:
            return
        self._ended = True
        self.end_reason = reason
        self._frames = None
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            status = CommandStatus.TIMEOUT if inflight.delivered else CommandStatus.OFFLINE
            self._answer(inflight, status, b"")
        for command in self._queue or ():
            self._answer(command, CommandStatus.OFFLINE, b"")
        self._queue = None
        self._wake_reader()

    def offer_command(self, command: Command, now: float) -> None:
        """Take a backend's command: send it now, queue it, or answer busy / offline.

        Args:
            command: the command.
            now: `time.monotonic()`.
        """
        if self._ended:
            self._answer(command, CommandStatus.OFFLINE, b"")
        elif self._inflight is None:
            self._start(command, now)
        else:
            queue = self._queue
            if queue is None:
                queue = self._queue = deque()
            if len(queue) >= self._host.command_queue:
                self._answer(command, CommandStatus.BUSY, b"")
            else:
                queue.append(command)

    def answered(
        self, unique_id: str, message_type: int, frame: bytes, from_gateway: bool, now: float
    ) -> None:
        """An answer to the command in flight (a late or unknown one is counted and dropped).

        Args:
            unique_id: the answer's UniqueId.
            message_type: 3, 4 or 5.
            frame: the answer.
            from_gateway: the gateway answered the command itself (`answer_status`).
            now: `time.monotonic()`: the next queued command starts.
        """
        command = self._inflight
        if command is None or command.unique_id != unique_id:
            self._host.stats.late_answers += 1
            return
        self._finish(command, answer_status(message_type, from_gateway), frame, now)

    def tick(self, now: float) -> None:
        """Time out the command in flight once its deadline passed.

        Args:
            now: `time.monotonic()`.
        """
        command = self._inflight
        if command is None or now < command.deadline:
            return
        if not command.delivered:
            # Still waiting for the relay: take it back, it never reached the charge point.
            frames = self._frames
            if frames is not None:
                with contextlib.suppress(ValueError):
                    frames.remove(command.frame)
                if not frames:
                    self._frames = None
        self._finish(command, CommandStatus.TIMEOUT, b"", now)

    def _start(self, command: Command, now: float) -> None:
        self._inflight = command
        command.deadline = now + self._host.command_timeout
        self.deliver(command.frame)

    def _finish(self, command: Command, status: CommandStatus, frame: bytes, now: float) -> None:
        self._inflight = None
        self._answer(command, status, frame)
        queue = self._queue
        if queue:
            self._start(queue.popleft(), now)
        if not queue:
            self._queue = None

    def _answer(self, command: Command, status: CommandStatus, frame: bytes) -> None:
        self._host.stats.commands[status.value] += 1
        self._host.answer_command(self, command, status, frame)


class LinkTable:
    """The links of one transport by identity token, with the epoch rules both brokers share.

    Usually one link per token; two while a charge point reconnects to the same node (the newer
    claim makes the older link lose).

    Args:
        stats: the transport's counters.
    """

    __slots__ = ("_links", "stats")

    def __init__(self, stats: BrokerStats) -> None:
        # Tuples, not lists: one link per token is the rule, and a 1-tuple is half a list's size.
        self._links: dict[str, tuple[BrokerLink, ...]] = {}
        self.stats = stats

    def __len__(self) -> int:
        return sum(len(links) for links in self._links.values())

    def add(self, link: BrokerLink) -> None:
        """Register a link that is claiming ownership (epoch 0 until the claim returns)."""
        self._links[link.token] = (*self._links.get(link.token, ()), link)

    def forget(self, link: BrokerLink) -> None:
        """Remove a link; no error when it is not registered."""
        links = self._links.get(link.token)
        if links is not None and link in links:
            rest = tuple(other for other in links if other is not link)
            if rest:
                self._links[link.token] = rest
            else:
                del self._links[link.token]

    def live(self, charge_point_id: str, epoch: str) -> BrokerLink | None:
        """Args:
            charge_point_id: the identity a frame is addressed to.
            epoch: the epoch it carries (text).

        Returns:
            The live link of that connection, or None (then the frame is stale).
        """
        links = self._links.get(identity_token(charge_point_id))
        if links:
            for link in links:
                if str(link.epoch) == epoch and not link.ended:
                    return link
        return None

    def owner_changed(self, token: str, revision: int) -> None:
        """An ownership entry was written with `revision`: links with an older epoch lose;
        links still claiming remember it (their claim lost if it is older).

        Args:
            token: the identity token.
            revision: the new entry's revision (epoch).
        """
        links = self._links.get(token)
        if not links:
            return
        for link in links:
            if link.epoch == 0:
                link.seen_revision = max(link.seen_revision, revision)
            elif revision > link.epoch and not link.ended:
                self.stats.ownership_changes += 1
                link.lose("moved")
                self.forget(link)

    def pending_commands(self) -> int:
        """Returns: commands in flight or waiting, over all links."""
        return sum(link.pending_commands for group in self._links.values() for link in group)

    def tick(self, now: float) -> None:
        """Time out the commands whose deadline passed, on every link.

        Args:
            now: `time.monotonic()`.
        """
        for group in list(self._links.values()):
            for link in group:
                link.tick(now)

    def lose_all(self, reason: LinkEnd = "lost") -> None:
        """End every link (the broker connection is gone, or the transport closes).

        Args:
            reason: the links' `end_reason`.
        """
        links, self._links = self._links, {}
        for group in links.values():
            for link in group:
                link.lose(reason)
