"""A broker transport: the link table and the protocol's decisions, composed with one broker client.

`BrokerTransport` is what the server sees of NATS or Redis Streams (`Transport`,
`SharedOwnership`, and the `LinkHost` of its links). It does the same on every broker: claim
a charge point and open its link, ask another node whether it still holds one, take and answer
commands, refresh this node's liveness entry, time out commands on the process timer's tick.
The broker itself is a `BrokerClient` (`nats.py`, `redis.py`): thin I/O that reads and writes
the layout and hands what arrives to the transport's `Inbox` methods. The walk of a command:
client -> `command` (`protocol.take_command`) -> link -> relay -> link -> `answer_command`
-> client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from time import monotonic
from typing import Any, Protocol

from ocpp_gateway.aio import raise_if_cancelling, stop
from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.transports.base import Holder
from ocpp_gateway.transports.broker.contract import (
    H_ACTION,
    H_CHARGE_POINT,
    H_COMMAND_ID,
    H_EPOCH,
    H_MESSAGE_ID,
    CommandStatus,
    ProbeRequest,
    identity_token,
)
from ocpp_gateway.transports.broker.link import BrokerLink, Command, LinkTable
from ocpp_gateway.transports.broker.metrics import BrokerStats
from ocpp_gateway.transports.broker.protocol import (
    Refuse,
    claim_outcome,
    holder_to_ask,
    link_version,
    ping_answer,
    probe_answer,
    take_command,
    to_transaction_stream,
)

__all__ = [
    "BrokerClient",
    "BrokerOptions",
    "BrokerTransport",
    "Inbox",
    "Prober",
    "assume_alive",
    "url_errors",
]

log = logging.getLogger("ocpp_gateway.transports.broker")

#: Pings a charge point connected to this node: True when it answered (set by the server).
Prober = Callable[[str], Awaitable[bool]]


async def assume_alive(charge_point_id: str) -> bool:
    """The prober of a transport used without a server: a held link counts as alive."""
    return True


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


class Inbox(Protocol):
    """What a broker client hands over from the broker (the transport implements it)."""

    def answer(self, charge_point_id: str, epoch: str, frame: bytes) -> None:
        """A backend's answer to a charge point CALL."""
        ...

    def command(
        self,
        frame: bytes,
        reply: str,
        charge_point_id: str,
        epoch: str,
        command_id: str,
        echo: Mapping[str, str] | None,
    ) -> None:
        """A backend's command (`protocol.take_command`)."""
        ...

    def probe(self, request: ProbeRequest, respond: Callable[[bytes], Awaitable[object]]) -> None:
        """Another node's probe; `respond` sends the answer back."""
        ...

    def owner_changed(self, token: str, revision: int) -> None:
        """An ownership entry was written (`LinkTable.owner_changed`)."""
        ...

    def stale(self) -> None:
        """A message addressed to this node that nobody can use (counted)."""
        ...

    def lost(self, first: bool) -> None:
        """The broker connection is gone: every link is lost.

        Args:
            first: it was up until now (counted as a disconnect).
        """
        ...


class BrokerClient(Protocol):
    """One broker's I/O for a `BrokerTransport` (`nats.NatsClient`, `redis.RedisClient`).

    Every method but `ready` may raise one of `errors`, TimeoutError or TransportUnavailable
    when the broker fails or is away.

    Attributes:
        broker: the broker's name in messages ("NATS", "Redis").
        errors: what its client library raises when the broker fails or is away.
        dedup_field: the broker's name of the dedup key.
        body_field: the field that carries the frame before its metadata (Redis: "frame"),
            "" when the frame is the message's body (NATS).
        reply_address: where backends answer this node's frames (`Ocpp-Reply`).
    """

    broker: str
    errors: tuple[type[Exception], ...]
    dedup_field: str
    body_field: str
    reply_address: str | bytes

    def ready(self) -> bool:
        """Returns: True while the broker takes frames and this node receives its messages."""
        ...

    async def subscribe(self, inbox: Inbox) -> None:
        """Connect (when not connected), make sure the layout exists, and hand what arrives
        for this node to `inbox` from now on.

        Raises:
            TransportUnavailable: the broker cannot be reached in time.
        """
        ...

    async def claim(self, token: str, version: str) -> int:
        """Returns: the epoch of this node's new ownership entry of `token`."""
        ...

    async def read_owner(self, token: str) -> tuple[str, str] | None:
        """Returns: (node, epoch as text) of the ownership entry, None when there is none."""
        ...

    async def ask_probe(
        self, node: str, charge_point_id: str, epoch: str, limit: float, ping: bool
    ) -> Holder:
        """Ask `node` whether it holds the connection (with `ping`, after pinging its charge
        point); wait up to `limit` seconds. Returns: `protocol.holder_state` of the outcome."""
        ...

    async def drop_owner(self, token: str, epoch: int) -> None:
        """Delete the ownership entry of `token` unless a newer claim replaced `epoch`."""
        ...

    async def publish(
        self,
        link: BrokerLink,
        tx: bool,
        message_type: int,
        unique_id: str,
        action: str,
        frame: bytes,
    ) -> None:
        """Hand one charge point frame to the broker with its metadata
        (`protocol.frame_metadata`, the fixed part encoded once per link in `link.wire`);
        return once the broker acknowledged it.

        Raises:
            TransportUnavailable: the broker did not take it in time.
        """
        ...

    async def respond(
        self, reply: str, status: CommandStatus, frame: bytes, fields: Mapping[str, str]
    ) -> None:
        """Send a command's outcome to `reply` (nothing when `reply` is empty)."""
        ...

    async def refresh_node(self, limit: float) -> None:
        """Write this node's liveness entry within `limit` seconds; a failure is the client's
        to handle (log it, or take the connection for lost)."""
        ...

    async def close(self) -> None:
        """Leave the liveness entry, stop the client's tasks, close the connection."""
        ...


class BrokerTransport:
    """A broker transport on this node (see the module docstring). Hooks for the server:
    `ready()` (False while the broker is unreachable: `/readyz` answers 503), `stats`
    (counters for the metrics), `connected_links`, `prober` (pings a charge point here),
    `tick(now)` (the process timer).

    Args:
        name: the transport's configured name.
        options: the settings.
        client: the broker's I/O.
    """

    def __init__(self, name: str, options: BrokerOptions, client: BrokerClient) -> None:
        self.name = name
        self.options = options
        self.node_id = options.node_id
        self.client = client
        self.stats = BrokerStats()
        self.command_timeout = options.command_timeout
        self.command_queue = options.command_queue
        self._tx_actions = frozenset(options.transaction_actions)
        self._links = LinkTable(self.stats)
        self._closed = False
        self._heartbeat: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        # What the client raises when the broker fails: its errors, a timeout, or
        # TransportUnavailable.
        self._failures: tuple[type[Exception], ...] = (
            *client.errors,
            TimeoutError,
            TransportUnavailable,
        )
        # Pings this node's charge points when another node asks (set by the server).
        self.prober: Prober = assume_alive

    # -- hooks for the server -----------------------------------------------------------------

    def ready(self) -> bool:
        """Returns: True while the broker can take frames."""
        return not self._closed and self.client.ready()

    @property
    def connected_links(self) -> int:
        """Returns: links open now."""
        return len(self._links)

    @property
    def pending_commands(self) -> int:
        """Returns: commands in flight or waiting, over all links."""
        return self._links.pending_commands()

    def tick(self, now: float) -> None:
        """Time out the commands whose deadline passed (the process timer calls this).

        Args:
            now: `time.monotonic()`.
        """
        self._links.tick(now)

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create the layout when missing, subscribe, start the node heartbeat.

        Raises:
            TransportUnavailable: the broker cannot be reached, or the transport is closed.
        """
        if self._closed:
            raise TransportUnavailable("transport closed")
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._heartbeat_loop())
        await self.client.subscribe(self)

    async def close(self) -> None:
        """Lose every link, leave the node's liveness entry, close the connection and stop the
        background tasks; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._links.lose_all("closed")
        await stop([self._heartbeat])
        await self.client.close()
        await stop(list(self._background))

    async def _heartbeat_loop(self) -> None:
        """Refresh this node's liveness entry every third of `node_ttl` while ready."""
        interval = max(0.2, self.options.node_ttl / 3)
        while True:
            await asyncio.sleep(interval)
            if self.client.ready():
                await self.client.refresh_node(interval)
            raise_if_cancelling()

    def _in_background(self, work: Awaitable[Any]) -> None:
        """Run `work` as a task the transport holds until it is done (and cancels on close)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
        client = self.client
        if not self.ready():
            await self.start()
            if not client.ready():
                raise TransportUnavailable(f"{client.broker} unavailable")
        version = link_version(versions)
        if version is None:
            raise TransportUnavailable(f"no {client.broker} token for {', '.join(versions)}")
        token = identity_token(charge_point_id)
        link = BrokerLink(self, charge_point_id, token, version)
        self._links.add(link)
        try:
            epoch = await asyncio.wait_for(
                client.claim(token, version), self.options.publish_timeout
            )
        except self._failures as exc:
            self._links.forget(link)
            raise TransportUnavailable(f"cannot claim ownership: {type(exc).__name__}") from exc
        link.epoch = epoch
        if claim_outcome(link, epoch) == "overtaken":
            self._links.forget(link)
            raise TransportUnavailable("another node took the charge point meanwhile")
        return link

    async def held_elsewhere(self, charge_point_id: str, probe: bool, limit: float) -> Holder:
        """Whether another live node holds this identity (`base.SharedOwnership`): its
        ownership entry names another node, and that node answers that it holds it (with
        `probe`, after pinging its charge point; nobody listening for that node: it is gone).

        Args:
            charge_point_id: the newcomer's identity.
            probe: ask the holding node for a ping.
            limit: seconds to wait for its answer.

        Returns:
            "free", "live" or "unresponsive".

        Raises:
            TransportUnavailable: the broker cannot be asked.
        """
        client = self.client
        if not self.ready():
            raise TransportUnavailable(f"{client.broker} unavailable")
        try:
            async with asyncio.timeout(self.options.publish_timeout):
                owner = await client.read_owner(identity_token(charge_point_id))
            ask = holder_to_ask(owner, self.node_id)
            if ask is None:
                return "free"
            node, epoch = ask
            return await client.ask_probe(node, charge_point_id, epoch, limit, probe)
        except self._failures as exc:
            raise TransportUnavailable(f"cannot read ownership: {type(exc).__name__}") from exc

    # -- LinkHost: what the links ask of the transport ------------------------------------------

    async def publish_frame(
        self, link: BrokerLink, frame: bytes, message_type: int, unique_id: str, action: str
    ) -> None:
        """Hand one charge point frame to the broker with its metadata; return once the
        broker acknowledged it (`LinkHost`).

        Args:
            link: the charge point's link.
            frame: the bytes, unchanged.
            message_type: 2 (CALL) or 6 (SEND).
            unique_id: the frame's UniqueId.
            action: its action.

        Raises:
            TransportUnavailable: the broker did not take it in time.
        """
        client = self.client
        if self._closed or not client.ready():
            raise TransportUnavailable(f"{client.broker} unavailable")
        tx = to_transaction_stream(message_type, action, frame, self._tx_actions)
        stats = self.stats
        started = monotonic()
        stats.publishing += 1
        try:
            await client.publish(link, tx, message_type, unique_id, action, frame)
        except TransportUnavailable:
            stats.publish_failures += 1
            raise
        finally:
            stats.publishing -= 1
        stats.published += 1
        stats.publish_seconds += monotonic() - started

    def answer_command(
        self, link: BrokerLink, command: Command, status: CommandStatus, frame: bytes
    ) -> None:
        """Send a command's outcome to the backend that asked, at its reply address (in the
        background; `LinkHost`).

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
        self._in_background(self.client.respond(command.reply, status, frame, fields))

    async def release(self, link: BrokerLink) -> None:
        """Forget a closed link; delete its ownership entry unless a newer claim replaced it
        (`LinkHost`).

        Args:
            link: the closed link.
        """
        self._links.forget(link)
        if not link.epoch or not self.ready():
            return
        with contextlib.suppress(*self._failures):
            await asyncio.wait_for(self.client.drop_owner(link.token, link.epoch), 2.0)

    # -- Inbox: what the client hands over ------------------------------------------------------

    def answer(self, charge_point_id: str, epoch: str, frame: bytes) -> None:
        """A backend's answer: to the live link of its charge point and epoch, else dropped.

        Args:
            charge_point_id: `Ocpp-Cp`.
            epoch: `Ocpp-Epoch`.
            frame: the answer.
        """
        link = self._links.live(charge_point_id, epoch)
        if link is None:
            self.stats.stale_dropped += 1
        else:
            link.deliver(frame)

    def command(
        self,
        frame: bytes,
        reply: str,
        charge_point_id: str,
        epoch: str,
        command_id: str,
        echo: Mapping[str, str] | None,
    ) -> None:
        """A backend's command: to its live link, or refused at once (`protocol.take_command`).

        Args:
            frame: the command's bytes.
            reply: where its outcome goes.
            charge_point_id: the identity it is addressed to.
            epoch: the epoch it carries.
            command_id: the backend's own id for it.
            echo: the metadata a refusal answers with (None: what is known of the command).
        """
        decision = take_command(self._links, frame, reply, charge_point_id, epoch, command_id, echo)
        if isinstance(decision, Refuse):
            self.stats.commands[decision.status.value] += 1
            self._in_background(self.client.respond(reply, decision.status, b"", decision.fields))
        else:
            decision.link.offer_command(decision.command, monotonic())

    def probe(self, request: ProbeRequest, respond: Callable[[bytes], Awaitable[object]]) -> None:
        """Answer another node's probe in the background: a ping takes up to
        takeover_ping_timeout, and the broker's callbacks must go on meanwhile.

        Args:
            request: the probe.
            respond: sends the answer (b"alive", b"unresponsive" or b"gone") to the asker.
        """

        async def answer() -> None:
            verdict = probe_answer(
                self._links, request.charge_point_id, request.epoch, request.ping
            )
            if verdict is None:
                verdict = ping_answer(await self.prober(request.charge_point_id))
            with contextlib.suppress(*self.client.errors):
                await respond(verdict)

        self._in_background(answer())

    def owner_changed(self, token: str, revision: int) -> None:
        """A newer owner (another node, or a newer connection here): older links go.

        Args:
            token: the identity token.
            revision: the new entry's epoch.
        """
        self._links.owner_changed(token, revision)

    def stale(self) -> None:
        """A message for this node that nobody can use: counted as stale."""
        self.stats.stale_dropped += 1

    def lost(self, first: bool) -> None:
        """The broker connection is gone: every link is lost (the relay closes their charge
        point sockets with 1013).

        Args:
            first: it was up until now (counted as a disconnect, logged).
        """
        if self._closed:
            return
        if first:
            self.stats.disconnects += 1
            log.warning(
                "broker connection lost: closing every charge point link",
                extra={"transport": self.name, "broker": self.client.broker},
            )
        self._links.lose_all()
