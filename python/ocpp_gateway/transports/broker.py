"""What the broker transports share: the wire contract's names and the per-charge-point link.

Identity tokens, node ids, the link with its one-command-in-flight queue, and
`BrokerTransportBase`: what a broker transport does the same way on every broker (claim a charge
point and open its link, ask another node whether it still holds one, take and answer commands,
refresh this node's liveness), with hooks that each broker module implements with its client.

The contract (docs/brokers.md) is the same on NATS and on Redis Streams: the body is the frame
exactly as the charge point sent it; metadata travels beside it under the header (NATS) or
field (Redis) names below; command answers carry a status from `CommandStatus`.

A `BrokerLink` is what the relay sees for one charge point. The broker module gives it a
`LinkOwner` that publishes the charge point's frames with broker acknowledgement and answers
the backends' commands; the link itself keeps:
- the frames waiting for `recv` (answers to the charge point's calls, and the one command in
  flight), handed over in arrival order;
- the command queue: one command in flight per charge point, at most `command_queue` more
  waiting (the next one is answered busy), each with a deadline (then: timeout);
- its connection epoch (the broker's ownership revision); frames stamped with another epoch are
  dropped by the owner before they get here.

An idle link holds no task: it is a `WakingLink` (`ocpp_gateway.transports.base`), so the relay
parks its pump with `set_wake` instead of a task waiting in `recv`, and the link calls the
wake-up once a frame is queued or the link ended. Its frame queue exists only while frames wait.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
import os
import re
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, Self, TypeVar

import orjson

from ocpp_gateway.aio import raise_if_cancelling, stop
from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.schemas import TRANSACTION_ACTIONS, is_transaction_message
from ocpp_gateway.transports.base import Holder

__all__ = [
    "DEFAULT_TRANSACTION_ACTIONS",
    "H_ACTION",
    "H_CHARGE_POINT",
    "H_COMMAND_ID",
    "H_EPOCH",
    "H_MESSAGE_ID",
    "H_MESSAGE_TYPE",
    "H_NODE",
    "H_PROTOCOL",
    "H_RECEIVED",
    "H_REPLY",
    "H_STATUS",
    "PROBE_ANSWERS",
    "VERSION_TOKENS",
    "BrokerCollector",
    "BrokerLink",
    "BrokerOptions",
    "BrokerStats",
    "BrokerTransport",
    "BrokerTransportBase",
    "Command",
    "CommandStatus",
    "LinkOwner",
    "LinkTable",
    "Prober",
    "answer_probe",
    "assume_alive",
    "default_node_id",
    "identity_token",
    "is_transaction",
    "parse_command",
    "received_timestamp",
    "url_errors",
]

log = logging.getLogger("ocpp_gateway.transports.broker")

# Names of the metadata beside each frame (NATS headers; Redis stream fields and hash keys).
H_CHARGE_POINT = "Ocpp-Cp"
H_PROTOCOL = "Ocpp-Proto"
H_MESSAGE_TYPE = "Ocpp-Type"
H_MESSAGE_ID = "Ocpp-Msg-Id"
H_ACTION = "Ocpp-Action"
H_NODE = "Ocpp-Node"
H_EPOCH = "Ocpp-Epoch"
H_RECEIVED = "Ocpp-Rx-Ts"
H_REPLY = "Ocpp-Reply"
H_STATUS = "Ocpp-Status"
H_COMMAND_ID = "Ocpp-Cmd-Id"

# Subject / key token of each OCPP version (subject tokens cannot hold dots).
VERSION_TOKENS = {"ocpp1.6": "16", "ocpp2.0.1": "201", "ocpp2.1": "21"}

# DESIGN.md "Rules that keep data safe": the messages a charger queues and retries itself.
# MeterValues counts only when it carries a transactionId (checked on the bytes).
DEFAULT_TRANSACTION_ACTIONS = tuple(sorted(TRANSACTION_ACTIONS))

_TOKEN_SAFE = re.compile(r"[A-Za-z0-9_-]+")
# The head of a validated frame: message type, UniqueId, and (CALL, SEND) the action, when they
# hold no escapes; anything else is parsed with orjson.
_HEAD = re.compile(rb'\s*\[\s*([2-6])\s*,\s*"([^"\\]*)"\s*(?:,\s*"([^"\\]*)")?')
_BYTE_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class CommandStatus(StrEnum):
    """How a backend's command to a charge point ended (the `Ocpp-Status` of its answer)."""

    OK = "ok"  # the charge point answered with a CALLRESULT (the body)
    CALLERROR = "callerror"  # the charge point answered with a CALLERROR (the body)
    OFFLINE = "offline"  # no live connection: never sent; safe to retry later
    BUSY = "busy"  # the charge point's command queue is full: never sent; retry later
    TIMEOUT = "timeout"  # sent, no answer in time (or the connection dropped): outcome unknown
    REJECTED = "rejected"  # the gateway refused it (validation); body: the gateway's CALLERROR


def identity_token(charge_point_id: str) -> str:
    """The charge point id as one subject token / key part: `[A-Za-z0-9_-]` kept, every other
    byte of its UTF-8 form written `=HH` (upper-case hex). Reversible and collision-free.

    Args:
        charge_point_id: the identity from the connection path.

    Returns:
        The token.
    """
    if _TOKEN_SAFE.fullmatch(charge_point_id):
        return charge_point_id
    return "".join(
        chr(byte) if byte in _BYTE_SAFE else f"={byte:02X}"
        for byte in charge_point_id.encode("utf-8")
    )


def default_node_id() -> str:
    """Returns: this process's node id when none is configured: host name and pid, as a token."""
    return identity_token(f"{socket.gethostname()}-{os.getpid()}")


def url_errors(key: str, url: str, schemes: tuple[str, ...]) -> list[str]:
    """The errors of a broker's `url` setting (several URLs may be given comma-separated).

    Args:
        key: the setting's place in the configuration, starting each error.
        url: the setting.
        schemes: the schemes the broker's client takes ("unix" needs no host).

    Returns:
        One error per URL with another scheme or no host.
    """
    from urllib.parse import urlsplit

    errors = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        if parts.scheme not in schemes or not (parts.hostname or parts.scheme == "unix"):
            expected = " or ".join(f"{scheme}://" for scheme in schemes)
            errors.append(
                f"{key}.url: expected {expected}host[:port]..., got {parts.scheme or 'no scheme'}"
            )
    return errors


def is_transaction(action: str, frame: bytes, actions: frozenset[str]) -> bool:
    """Whether a CALL belongs on the transaction stream (`session.is_transaction_message`).

    Args:
        action: the CALL's action.
        frame: its bytes (MeterValues counts only with a transactionId in its payload).
        actions: the transaction-class action names.

    Returns:
        True for a transaction-class CALL.
    """
    return is_transaction_message(action, frame, actions)


@functools.lru_cache(maxsize=1)
def _second_text(second: int) -> str:
    """The date and time of a whole second, RFC 3339 UTC without the fraction."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def received_timestamp() -> str:
    """Returns: now, RFC 3339 UTC with microseconds (the `Ocpp-Rx-Ts` value).

    One per frame on the broker path: the date and time of the current second are formatted
    once a second, the microseconds every time (a datetime per frame cost ~3 % of the relay).
    """
    now = time.time()
    second = int(now)
    return f"{_second_text(second)}.{int((now - second) * 1e6):06d}Z"


@dataclass(slots=True)
class BrokerStats:
    """Counters a broker transport keeps for the metrics layer (read them, never reset them).

    Attributes:
        published: frames the broker acknowledged.
        publish_failures: frames the broker did not take (the link was then closed).
        publish_seconds: sum of the publish-to-acknowledgement latencies of `published`.
        stale_dropped: backend frames dropped for a wrong epoch or an unknown charge point.
        late_answers: charge point answers to commands that were no longer in flight.
        ownership_changes: charge points this node lost to a newer owner.
        commands: command answers sent, by status.
        disconnects: times the broker connection was lost.
        publishing: frames waiting for their acknowledgement now.
    """

    published: int = 0
    publish_failures: int = 0
    publish_seconds: float = 0.0
    stale_dropped: int = 0
    late_answers: int = 0
    ownership_changes: int = 0
    commands: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in CommandStatus})
    disconnects: int = 0
    publishing: int = 0


@dataclass(slots=True, eq=False)
class Command:
    """A backend's CALL to a charge point, waiting in or travelling through a link.

    Attributes:
        unique_id: the CALL's UniqueId.
        action: the CALL's action.
        frame: the CALL's bytes, forwarded unchanged.
        reply: where the owner sends the answer (a NATS inbox, a Redis list key).
        command_id: the backend's own id for it, echoed back.
        timer: the deadline, once in flight.
        delivered: True once `recv` handed it to the relay.
    """

    unique_id: str
    action: str
    frame: bytes
    reply: str
    command_id: str = ""
    timer: asyncio.TimerHandle | None = None
    delivered: bool = False


class LinkOwner(Protocol):
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
        owner: the transport.
        charge_point_id: the identity.
        token: `identity_token(charge_point_id)`.
        version: the OCPP version of the link (the first the charge point offered).
    """

    __slots__ = (
        "_ended",
        "_frames",
        "_inflight",
        "_owner",
        "_queue",
        "_reader",
        "_waiter",
        "_wake",
        "charge_point_id",
        "end_reason",
        "epoch",
        "published",
        "seen_revision",
        "token",
        "version",
    )

    def __init__(self, owner: LinkOwner, charge_point_id: str, token: str, version: str) -> None:
        self._owner = owner
        self.charge_point_id = charge_point_id
        self.token = token
        self.version = version
        self.epoch = 0  # set once ownership is claimed
        self.seen_revision = 0  # newest ownership revision seen while claiming
        # Frames handed to the broker on this connection: the last part of the dedup key, so
        # that the gateway's own publish retries collapse and a charger's retry never does.
        self.published = 0
        # Exists only while frames wait (an empty deque is ~0.6 KB): see `deliver` and `recv`.
        self._frames: deque[bytes] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wake: Callable[[], object] | None = None  # the parked pump's wake-up (set_wake)
        self._ended = False
        self.end_reason = ""  # once ended: "closed", "broker_lost" or "ownership_moved"
        self._reader: asyncio.Task[Any] | None = None
        self._inflight: Command | None = None
        self._queue: deque[Command] | None = None

    @property
    def ended(self) -> bool:
        """True once the link was closed or lost."""
        return self._ended

    @property
    def pending_commands(self) -> int:
        """Commands in flight or waiting on this link."""
        return (self._inflight is not None) + len(self._queue or ())

    # -- the relay's side ---------------------------------------------------------------------

    async def send(self, frame: bytes) -> None:
        """Take one frame from the relay: a charge point CALL (or SEND) is published and
        acknowledged by the broker before this returns; an answer to a command goes to the
        command's reply address.

        Args:
            frame: the frame, validated by the Session.

        Raises:
            TransportUnavailable: the link is lost, or the broker did not acknowledge in time.
        """
        if self._ended:
            raise TransportUnavailable("broker link closed")
        head = _HEAD.match(frame)
        if head is not None:
            message_type = int(head[1])
            unique_id = head[2].decode()
            action = (head[3] or b"").decode()
        else:
            try:
                message = orjson.loads(frame)
                message_type = int(message[0])
                unique_id = str(message[1])
                action = message[2] if len(message) > 2 and isinstance(message[2], str) else ""
            except (orjson.JSONDecodeError, IndexError, KeyError, TypeError, ValueError):
                # Only possible with validation off: nothing to route it by.
                log.warning(
                    "unroutable frame dropped", extra={"charge_point_id": self.charge_point_id}
                )
                return
        if message_type == 2 or message_type == 6:
            self.published += 1
            await self._owner.publish_frame(self, frame, message_type, unique_id, action)
        elif 3 <= message_type <= 5:
            self._command_answered(unique_id, message_type, frame)

    async def recv(self) -> bytes | None:
        """Returns: the next frame for the charge point, or None once the link ended."""
        self._reader = asyncio.current_task()
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
        self._reader = None  # the parked task has ended: hold no reference to it
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
            await self._owner.release(self)

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

    def lose(self, reason: str = "broker_lost") -> None:
        """End the link: `recv` returns None; waiting commands are answered offline (never
        sent), the one in flight timeout (outcome unknown).

        Args:
            reason: kept in `end_reason` for the server ("broker_lost", "ownership_moved",
                "closed").
        """
        if self._ended:
            return
        self._ended = True
        self.end_reason = reason
        self._frames = None
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            if inflight.timer is not None:
                inflight.timer.cancel()
            status = CommandStatus.TIMEOUT if inflight.delivered else CommandStatus.OFFLINE
            self._answer(inflight, status, b"")
        for command in self._queue or ():
            self._answer(command, CommandStatus.OFFLINE, b"")
        self._queue = None
        self._wake_reader()

    def offer_command(self, command: Command) -> None:
        """Take a backend's command: send it now, queue it, or answer busy / offline.

        Args:
            command: the command.
        """
        owner = self._owner
        if self._ended:
            self._answer(command, CommandStatus.OFFLINE, b"")
        elif self._inflight is None:
            self._start(command)
        else:
            queue = self._queue
            if queue is None:
                queue = self._queue = deque()
            if len(queue) >= owner.command_queue:
                self._answer(command, CommandStatus.BUSY, b"")
            else:
                queue.append(command)

    def _start(self, command: Command) -> None:
        self._inflight = command
        loop = asyncio.get_running_loop()
        command.timer = loop.call_later(self._owner.command_timeout, self._expire, command)
        self.deliver(command.frame)

    def _finish(self, command: Command, status: CommandStatus, frame: bytes) -> None:
        if command.timer is not None:
            command.timer.cancel()
        self._inflight = None
        self._answer(command, status, frame)
        queue = self._queue
        if queue:
            self._start(queue.popleft())

    def _expire(self, command: Command) -> None:
        if self._inflight is command:
            if not command.delivered:
                # Still waiting for the relay: take it back, it never reached the charge point.
                frames = self._frames
                if frames is not None:
                    with contextlib.suppress(ValueError):
                        frames.remove(command.frame)
                    if not frames:
                        self._frames = None
            self._finish(command, CommandStatus.TIMEOUT, b"")

    def _command_answered(self, unique_id: str, message_type: int, frame: bytes) -> None:
        command = self._inflight
        if command is None or command.unique_id != unique_id:
            self._owner.stats.late_answers += 1
            return
        # The relay's reader task sends what the gateway itself made of the command (a
        # validation CALLERROR); the charge point's answers come from its own task.
        if asyncio.current_task() is self._reader and self._reader is not None:
            status = CommandStatus.REJECTED if message_type != 3 else CommandStatus.OK
        else:
            status = CommandStatus.OK if message_type == 3 else CommandStatus.CALLERROR
        self._finish(command, status, frame)

    def _answer(self, command: Command, status: CommandStatus, frame: bytes) -> None:
        self._owner.stats.commands[status.value] += 1
        self._owner.answer_command(self, command, status, frame)


def parse_command(frame: bytes) -> tuple[str, str] | None:
    """The UniqueId and action of a backend's command frame.

    Args:
        frame: the bytes a backend sent as a command.

    Returns:
        (unique_id, action), or None when it is not a CALL.
    """
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if (
        isinstance(message, list)
        and len(message) == 4
        and message[0] == 2
        and isinstance(message[1], str)
        and isinstance(message[2], str)
    ):
        return message[1], message[2]
    return None


#: Pings a charge point connected to this node: True when it answered (set by the server).
Prober = Callable[[str], Awaitable[bool]]

#: A probing node's answers, as bytes on the wire; the asker maps them onto `base.Holder`.
PROBE_ANSWERS: dict[bytes, Holder] = {
    b"alive": "live",
    b"unresponsive": "unresponsive",
    b"gone": "free",
}


async def assume_alive(charge_point_id: str) -> bool:
    """The prober of a transport used without a server: a held link counts as alive."""
    return True


async def answer_probe(
    links: LinkTable, prober: Prober, charge_point_id: str, epoch: str, ping: bool = True
) -> bytes:
    """This node's answer to another node asking whether it still holds a connection.

    Args:
        links: the transport's links.
        prober: pings the charge point's socket.
        charge_point_id: the identity asked about.
        epoch: the epoch of the ownership entry the asker read.
        ping: ping the charge point (the "ping" takeover rule); without, a live link is alive.

    Returns:
        b"gone" (no live link of that epoch here: a stale entry, e.g. left while the broker was
        away), b"alive" (held; the charge point answered the ping when one was asked for) or
        b"unresponsive".
    """
    if links.live(charge_point_id, epoch) is None:
        return b"gone"
    if not ping:
        return b"alive"
    return b"alive" if await prober(charge_point_id) else b"unresponsive"


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
                link.lose("ownership_moved")
                self.forget(link)

    def pending_commands(self) -> int:
        """Returns: commands in flight or waiting, over all links."""
        return sum(link.pending_commands for group in self._links.values() for link in group)

    def lose_all(self, reason: str = "broker_lost") -> None:
        """End every link (the broker connection is gone, or the transport closes).

        Args:
            reason: the links' `end_reason`.
        """
        links, self._links = self._links, {}
        for group in links.values():
            for link in group:
                link.lose(reason)


class BrokerTransport(Protocol):
    """What the server and the metrics see of a broker transport (NATS, Redis Streams)."""

    name: str
    stats: BrokerStats

    def ready(self) -> bool:
        """True while the broker can take frames."""
        ...

    @property
    def connected_links(self) -> int:
        """Links open now."""
        ...

    @property
    def pending_commands(self) -> int:
        """Commands in flight or waiting, over all links."""
        ...


class BrokerOptions(Protocol):
    """The settings every broker transport has (`NatsOptions`, `RedisStreamsOptions`)."""

    @property
    def node_id(self) -> str:
        """This gateway process's id on the broker, as a token."""
        ...

    @property
    def transaction_actions(self) -> tuple[str, ...]:
        """CALLs that go to the transaction stream."""
        ...

    @property
    def publish_timeout(self) -> float:
        """Seconds a frame, a claim or an ownership read may take."""
        ...

    @property
    def node_ttl(self) -> float:
        """Seconds a node stays alive without a refresh."""
        ...

    @property
    def command_timeout(self) -> float:
        """Seconds a command may wait for the charge point's answer."""
        ...

    @property
    def command_queue(self) -> int:
        """Commands that may wait per charge point behind the one in flight."""
        ...


OptionsT = TypeVar("OptionsT", bound=BrokerOptions)


class BrokerTransportBase(abc.ABC, Generic[OptionsT]):
    """The flow a broker transport follows on every broker (`BrokerTransport`, `LinkOwner`,
    `base.SharedOwnership`); a subclass, one module per broker, implements the hooks with its
    client and keeps its layout, its publishing and its subscriptions.

    Hooks (a broker failure raises one of `_broker_errors`, TimeoutError or
    TransportUnavailable):
    - `_ensure_started()`: connect on the first `open`; TransportUnavailable when the broker
      cannot take charge points;
    - `_claim_epoch(token, subprotocol)`: write this node's ownership entry, return its epoch;
    - `_read_owner(token)`, `_ask_probe(...)`: the ownership entry and the probe of the
      holder (`held_elsewhere`);
    - `_drop_owner(link)`: delete the link's ownership entry unless a newer claim replaced it;
    - `_respond(reply, status, frame, fields)`: send a command's outcome (in the background);
    - `_refresh_node(limit)`, `_heartbeat_failed(exc)`: the liveness entry's refresh;
    - `_shut_down()`: leave the liveness entry, stop the broker's tasks, close the client;
    - `publish_frame(...)`: hand a charge point frame to the broker.

    Args:
        name: the transport's configured name.
        options: the settings.
    """

    #: The broker's name in messages.
    _broker = "the broker"
    #: What the broker's client raises when the broker fails or is away.
    _broker_errors: tuple[type[Exception], ...] = (OSError,)
    #: The metadata name of a frame's dedup key (each broker its own).
    _dedup_field: str

    def __init__(self, name: str, options: OptionsT) -> None:
        self.name = name
        self.options = options
        self.node_id = options.node_id
        self.stats = BrokerStats()
        self.command_timeout = options.command_timeout
        self.command_queue = options.command_queue
        self._tx_actions = frozenset(options.transaction_actions)
        self._links = LinkTable(self.stats)
        self._connected = False
        self._closed = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        # What a hook raises when the broker fails: its client's errors, a timeout, or
        # TransportUnavailable.
        self._failures: tuple[type[Exception], ...] = (
            *self._broker_errors,
            TimeoutError,
            TransportUnavailable,
        )
        # Pings this node's charge points when another node asks (set by the server).
        self.prober: Prober = assume_alive

    @classmethod
    def from_options(cls, name: str, options: OptionsT, max_message_bytes: int = 0) -> Self:
        """Build the transport from its typed settings (the registry's entry point)."""
        return cls(name, options)

    # -- hooks for the server -----------------------------------------------------------------

    def ready(self) -> bool:
        """Returns: True while the broker can take frames."""
        return self._connected

    @property
    def connected_links(self) -> int:
        """Returns: links open now."""
        return len(self._links)

    @property
    def pending_commands(self) -> int:
        """Returns: commands in flight or waiting, over all links."""
        return self._links.pending_commands()

    # -- life cycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Lose every link, leave the node's liveness entry, close the connection and stop the
        background tasks; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._links.lose_all("closed")
        await stop([self._heartbeat])
        await self._shut_down()
        self._connected = False
        await stop(list(self._background))

    # -- links --------------------------------------------------------------------------------

    async def open(self, charge_point_id: str, versions: tuple[str, ...]) -> BrokerLink:
        """Claim the charge point on the broker (a new epoch) and open its link.

        Args:
            charge_point_id: the identity.
            versions: the versions the charge point offered, preferred first; a backend on a
                broker is not asked, so the link takes the first.

        Returns:
            The link; its `epoch` is the ownership revision of the claim.

        Raises:
            TransportUnavailable: the broker is unreachable (or was lost while claiming), or
                another node took the charge point while this one claimed it.
        """
        await self._ensure_started()
        subprotocol = next((v for v in versions if v in VERSION_TOKENS), None)
        if subprotocol is None:
            raise TransportUnavailable(f"no {self._broker} token for {', '.join(versions)}")
        token = identity_token(charge_point_id)
        link = BrokerLink(self, charge_point_id, token, subprotocol)
        self._links.add(link)
        try:
            epoch = await asyncio.wait_for(
                self._claim_epoch(token, subprotocol), self.options.publish_timeout
            )
        except self._failures as exc:
            self._links.forget(link)
            raise TransportUnavailable(f"cannot claim ownership: {type(exc).__name__}") from exc
        link.epoch = epoch
        if link.seen_revision > epoch or link.ended:
            self._links.forget(link)
            raise TransportUnavailable("another node took the charge point meanwhile")
        return link

    async def held_elsewhere(self, charge_point_id: str, probe: bool, limit: float) -> Holder:
        """Whether another live node holds this identity (`base.SharedOwnership`): its
        ownership entry names another node, and that node is alive (its liveness entry exists;
        with `probe`, it answers a probe after pinging its charge point: nobody listening for
        that node means it is gone).

        Args:
            charge_point_id: the newcomer's identity.
            probe: ask the holding node for a ping.
            limit: seconds to wait for its answer.

        Returns:
            "free", "live" or "unresponsive".

        Raises:
            TransportUnavailable: the broker cannot be asked.
        """
        if not self.ready():
            raise TransportUnavailable(f"{self._broker} unavailable")
        timeout = self.options.publish_timeout
        try:
            async with asyncio.timeout(timeout):
                owner = await self._read_owner(identity_token(charge_point_id))
            if owner is None or owner[0] == self.node_id:
                return "free"  # none, or this node's own stale entry: the server holds none
            node, epoch = owner
            # The holder is always asked: an entry can outlive its connection (left while the
            # broker was away), and only the holding node knows. Without `probe`, it answers
            # from its links alone, with `probe` after pinging the charge point.
            return await self._ask_probe(node, charge_point_id, epoch, limit, probe)
        except self._failures as exc:
            raise TransportUnavailable(f"cannot read ownership: {type(exc).__name__}") from exc

    def _answer_probe(
        self,
        charge_point_id: str,
        epoch: str,
        respond: Callable[[bytes], Awaitable[object]],
        ping: bool = True,
    ) -> None:
        """Answer another node's probe (`answer_probe`) in the background: a ping takes up to
        takeover_ping_timeout, and the broker's callbacks must go on meanwhile.

        Args:
            charge_point_id: the identity asked about.
            epoch: the epoch of the ownership entry the asker read.
            respond: sends the answer (b"alive", b"unresponsive" or b"gone") to the asker.
            ping: ping the charge point before answering.
        """

        async def answer() -> None:
            verdict = await answer_probe(self._links, self.prober, charge_point_id, epoch, ping)
            with contextlib.suppress(*self._broker_errors):
                await respond(verdict)

        self._in_background(answer())

    async def release(self, link: BrokerLink) -> None:
        """Forget a closed link; delete its ownership entry unless a newer claim replaced it.

        Args:
            link: the closed link.
        """
        self._links.forget(link)
        if not link.epoch or not self.ready():
            return
        with contextlib.suppress(*self._failures):
            await asyncio.wait_for(self._drop_owner(link), 2.0)

    # -- frames to the broker -----------------------------------------------------------------

    def _frame_fields(
        self,
        fields: dict[str, Any],
        link: BrokerLink,
        message_type: int,
        unique_id: str,
        action: str,
        reply: str | bytes,
    ) -> dict[str, Any]:
        """Write the metadata beside one charge point frame (docs/brokers.md) into `fields`:
        the `H_*` names, then the dedup key `<node>:<epoch>:<n>` under `_dedup_field` (n: the
        frame's number on its connection, so that the gateway's own retries collapse and a
        charger's retry never does).

        Args:
            fields: what goes before them (kept first).
            link: the charge point's link.
            message_type: 2 (CALL) or 6 (SEND).
            unique_id: the frame's UniqueId.
            action: its action.
            reply: where backends answer (`H_REPLY`).

        Returns:
            `fields`.
        """
        epoch = str(link.epoch)
        fields[H_CHARGE_POINT] = link.charge_point_id
        fields[H_PROTOCOL] = link.version
        fields[H_MESSAGE_TYPE] = str(message_type)
        fields[H_MESSAGE_ID] = unique_id
        fields[H_ACTION] = action
        fields[H_NODE] = self.node_id
        fields[H_EPOCH] = epoch
        fields[H_RECEIVED] = received_timestamp()
        fields[H_REPLY] = reply
        fields[self._dedup_field] = f"{self.node_id}:{epoch}:{link.published}"
        return fields

    # -- commands -----------------------------------------------------------------------------

    def _take_command(
        self,
        frame: bytes,
        reply: str,
        charge_point_id: str,
        epoch: str,
        command_id: str,
        echo: Mapping[str, str] | None = None,
    ) -> None:
        """Take a backend's command: hand it to its live link, or answer rejected (not a CALL)
        or offline (no live link of that epoch here).

        Args:
            frame: the command's bytes.
            reply: where its outcome goes.
            charge_point_id: the identity it is addressed to.
            epoch: the epoch it carries.
            command_id: the backend's own id for it.
            echo: the metadata (`H_*` names) a refusal answers with; None: the charge point
                and the epoch, and, once the frame parsed, its UniqueId, action and command id.
        """
        parsed = parse_command(frame)
        if parsed is None:
            fields = echo if echo is not None else {H_CHARGE_POINT: charge_point_id, H_EPOCH: epoch}
            self._refuse(reply, CommandStatus.REJECTED, fields)
            return
        unique_id, action = parsed
        link = self._links.live(charge_point_id, epoch)
        if link is None:
            if echo is None:
                echo = {
                    H_CHARGE_POINT: charge_point_id,
                    H_EPOCH: epoch,
                    H_MESSAGE_ID: unique_id,
                    H_ACTION: action,
                    H_COMMAND_ID: command_id,
                }
            self._refuse(reply, CommandStatus.OFFLINE, echo)
            return
        link.offer_command(Command(unique_id, action, frame, reply, command_id))

    def _refuse(self, reply: str, status: CommandStatus, fields: Mapping[str, str]) -> None:
        self.stats.commands[status.value] += 1
        self._respond(reply, status, b"", fields)

    def answer_command(
        self, link: BrokerLink, command: Command, status: CommandStatus, frame: bytes
    ) -> None:
        """Send a command's outcome to the backend that asked, at its reply address (in the
        background).

        Args:
            link: the charge point's link.
            command: the command.
            status: its outcome.
            frame: the charge point's (or the gateway's rejecting) frame, or empty.
        """
        fields = {
            H_CHARGE_POINT: link.charge_point_id,
            H_EPOCH: str(link.epoch),
            H_MESSAGE_ID: command.unique_id,
            H_ACTION: command.action,
            H_COMMAND_ID: command.command_id,
        }
        self._respond(command.reply, status, frame, fields)

    def _in_background(self, work: Awaitable[Any]) -> None:
        """Run `work` as a task the transport holds until it is done (and cancels on close)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- liveness -----------------------------------------------------------------------------

    def _node_value(self) -> bytes:
        return orjson.dumps({"node": self.node_id, "ts": time.time()})

    async def _heartbeat_loop(self) -> None:
        """Refresh this node's liveness entry every third of `node_ttl` while ready."""
        interval = max(0.2, self.options.node_ttl / 3)
        while True:
            await asyncio.sleep(interval)
            if not self.ready():
                continue
            try:
                await self._refresh_node(interval)
            except self._failures as exc:
                await self._heartbeat_failed(exc)
            raise_if_cancelling()

    # -- what each broker implements ----------------------------------------------------------

    @abc.abstractmethod
    async def publish_frame(
        self, link: BrokerLink, frame: bytes, message_type: int, unique_id: str, action: str
    ) -> None:
        """Hand one charge point frame to the broker; return once it acknowledged it
        (`LinkOwner.publish_frame`).

        Raises:
            TransportUnavailable: the broker did not take it in time.
        """

    @abc.abstractmethod
    async def _ensure_started(self) -> None:
        """Connect on first use; raise TransportUnavailable unless ready."""

    @abc.abstractmethod
    async def _shut_down(self) -> None:
        """Leave the liveness entry, stop the broker's own tasks, close the client."""

    @abc.abstractmethod
    async def _claim_epoch(self, token: str, subprotocol: str) -> int:
        """Returns: the epoch of this node's new ownership entry of `token`."""

    @abc.abstractmethod
    async def _read_owner(self, token: str) -> tuple[str, str] | None:
        """Returns: (node, epoch as text) of the ownership entry, None when there is none."""

    @abc.abstractmethod
    async def _ask_probe(
        self, node: str, charge_point_id: str, epoch: str, limit: float, ping: bool
    ) -> Holder:
        """Ask `node` whether it holds the connection (and, with `ping`, to ping its charge
        point); wait up to `limit` seconds for the answer.

        Returns:
            Its answer through `PROBE_ANSWERS`; "free" when nobody listens for that node;
            "live" when no answer came in time (a busy holder keeps its charge point: the
            newcomer is refused and retries).
        """

    @abc.abstractmethod
    async def _drop_owner(self, link: BrokerLink) -> None:
        """Delete the link's ownership entry unless a newer claim replaced it."""

    @abc.abstractmethod
    def _respond(
        self, reply: str, status: CommandStatus, frame: bytes, fields: Mapping[str, str]
    ) -> None:
        """Send a command's outcome to `reply` (in the background); no reply: nothing.

        Args:
            reply: the backend's reply address.
            status: the outcome.
            frame: the charge point's (or the gateway's rejecting) frame, or empty.
            fields: `H_CHARGE_POINT`, `H_EPOCH`, `H_MESSAGE_ID`, `H_ACTION`, `H_COMMAND_ID`
                (missing or empty: unknown).
        """

    @abc.abstractmethod
    async def _refresh_node(self, limit: float) -> None:
        """Write this node's liveness entry (`_node_value`), within `limit` seconds if the
        client does not bound it itself."""

    @abc.abstractmethod
    async def _heartbeat_failed(self, exc: Exception) -> None:
        """A refresh failed with `exc`."""


class BrokerCollector:
    """A prometheus_client collector of broker transports' counters, read at scrape time
    (nothing on the hot path). Register it once: `registry.register(BrokerCollector([...]))`.

    Metrics (label `transport`: the configured name; `status`: a `CommandStatus`):
    `ocpp_gateway_broker_connected` (1 while ready), `ocpp_gateway_broker_links`,
    `ocpp_gateway_broker_publishing` (frames awaiting acknowledgement),
    `ocpp_gateway_broker_pending_commands`, `ocpp_gateway_broker_published_total`,
    `ocpp_gateway_broker_publish_failures_total`, `ocpp_gateway_broker_publish_seconds`
    (summary: count and sum of publish-to-acknowledgement latency),
    `ocpp_gateway_broker_ownership_changes_total`, `ocpp_gateway_broker_commands_total`,
    `ocpp_gateway_broker_stale_dropped_total`, `ocpp_gateway_broker_late_answers_total`,
    `ocpp_gateway_broker_disconnects_total`.

    Args:
        transports: the broker transports to export.
    """

    def __init__(self, transports: Iterable[BrokerTransport]) -> None:
        self.transports = list(transports)

    def describe(self) -> list[Any]:
        """Returns: nothing (the families are built at collect time)."""
        return []

    def collect(self) -> Iterator[Any]:
        """Yields: the metric families."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )

        prefix = "ocpp_gateway_broker_"
        labels = ["transport"]
        gauges = {
            "connected": GaugeMetricFamily(
                prefix + "connected", "1 while the broker takes frames.", labels=labels
            ),
            "links": GaugeMetricFamily(
                prefix + "links", "Charge point links open now.", labels=labels
            ),
            "publishing": GaugeMetricFamily(
                prefix + "publishing", "Frames waiting for the broker's ack.", labels=labels
            ),
            "pending": GaugeMetricFamily(
                prefix + "pending_commands", "Commands in flight or queued.", labels=labels
            ),
        }
        counters = {
            "published": CounterMetricFamily(
                prefix + "published", "Frames the broker acknowledged.", labels=labels
            ),
            "publish_failures": CounterMetricFamily(
                prefix + "publish_failures", "Frames the broker did not take.", labels=labels
            ),
            "ownership_changes": CounterMetricFamily(
                prefix + "ownership_changes",
                "Charge points this node lost to a newer owner.",
                labels=labels,
            ),
            "stale_dropped": CounterMetricFamily(
                prefix + "stale_dropped",
                "Backend frames dropped for a wrong epoch or unknown charge point.",
                labels=labels,
            ),
            "late_answers": CounterMetricFamily(
                prefix + "late_answers",
                "Charge point answers to commands no longer in flight.",
                labels=labels,
            ),
            "disconnects": CounterMetricFamily(
                prefix + "disconnects", "Times the broker connection was lost.", labels=labels
            ),
        }
        latency = SummaryMetricFamily(
            prefix + "publish_seconds", "Publish to broker acknowledgement.", labels=labels
        )
        commands = CounterMetricFamily(
            prefix + "commands", "Command outcomes.", labels=["transport", "status"]
        )
        for transport in self.transports:
            name = [transport.name]
            stats = transport.stats
            gauges["connected"].add_metric(name, 1.0 if transport.ready() else 0.0)
            gauges["links"].add_metric(name, transport.connected_links)
            gauges["publishing"].add_metric(name, stats.publishing)
            gauges["pending"].add_metric(name, transport.pending_commands)
            for key, family in counters.items():
                family.add_metric(name, getattr(stats, key))
            latency.add_metric(name, stats.published, stats.publish_seconds)
            for status, count in stats.commands.items():
                commands.add_metric([transport.name, status], count)
        yield from gauges.values()
        yield from counters.values()
        yield latency
        yield commands
