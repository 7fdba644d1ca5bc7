"""NATS JetStream: the broker client of the NATS transport, its options and its layout.

Charge point frames go into two durable streams and are handed over once JetStream
acknowledged them (PubAck); answers and commands travel over core NATS; the ownership of each
charge point is an entry of a KV bucket whose revision is the connection epoch; node liveness
is a KV bucket with a TTL. The layout (subjects, streams, buckets, headers) is the wire
contract of docs/brokers.md, "NATS JetStream".

A frame's headers are encoded once per link for what is fixed per connection
(`NatsFrameHeaders`), and its PubAck comes back on one subscription of the client, matched by
the reply subject's last token. A publish is retried with the same `Nats-Msg-Id` until
`publish_timeout`, then the link is lost (the relay closes the charge point socket with
1013). When the connection to NATS drops, every link is lost and `open` refuses new charge
points until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from ocpp_gateway.aio import raise_if_cancelling
from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.logs import redact_url
from ocpp_gateway.transports.base import Holder
from ocpp_gateway.transports.broker.contract import (
    DEFAULT_TRANSACTION_ACTIONS,
    H_ACTION,
    H_CHARGE_POINT,
    H_COMMAND_ID,
    H_EPOCH,
    H_MESSAGE_ID,
    H_MESSAGE_TYPE,
    H_NODE,
    H_PROTOCOL,
    H_RECEIVED,
    H_REPLY,
    NATS_EXPECTED_STREAM,
    NATS_MSG_ID,
    VERSION_TOKENS,
    CommandStatus,
    decode_nats_probe,
    decode_owner_node,
    default_node_id,
    encode_nats_probe,
    encode_node_value,
    encode_owner_value,
    identity_token,
    nats_outcome_headers,
    received_timestamp,
)
from ocpp_gateway.transports.broker.link import BrokerLink
from ocpp_gateway.transports.broker.protocol import holder_state
from ocpp_gateway.transports.broker.transport import BrokerTransport, Inbox, url_errors

__all__ = [
    "NatsClient",
    "NatsFrameHeaders",
    "NatsOptions",
    "NatsTransport",
    "connect",
    "ensure_layout",
    "send_hpub",
]

log = logging.getLogger("ocpp_gateway.transports.broker.nats")

_CLAIM_ATTEMPTS = 8
_ERRORS = (nats.errors.Error, OSError)
#: Inbound subjects kept per client (stream, version, action); past it they are built per frame.
_SUBJECTS_KEPT = 4096
#: The status header of a NATS reply, and its value when no stream takes a subject.
NATS_STATUS = "Status"
NO_RESPONDERS = "503"
# A header value as nats-py writes it: trimmed, CR and LF replaced by spaces.
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})


def _header(name: str, value: str) -> bytes:
    """One header line without its CRLF: `Name: value`, the value as nats-py cleans it."""
    return f"{name}: {value.strip().translate(_NEWLINES)}".encode()


class NatsFrameHeaders:
    """The headers of one link's frames (`protocol.frame_metadata`, then
    `Nats-Expected-Stream`), in the bytes nats-py would write for them: what is fixed per
    connection (charge point, version, node, epoch, reply subject, the dedup key's prefix) is
    encoded once; a frame adds its type, UniqueId, action, receive time and number.

    Args:
        link: the link (its `epoch` set: it is claimed).
        node_id: this node's id.
        reply: where backends answer (`Ocpp-Reply`).
        tx_stream, gen_stream: the streams' names (`Nats-Expected-Stream`).
    """

    __slots__ = ("_head", "_middle", "_streams", "_tail", "subject_tail")

    def __init__(
        self,
        link: BrokerLink,
        node_id: str,
        reply: str,
        tx_stream: str = "OCPP_TX",
        gen_stream: str = "OCPP_GEN",
    ) -> None:
        epoch = str(link.epoch)
        self._head = b"\r\n".join(
            (
                b"NATS/1.0",
                _header(H_CHARGE_POINT, link.charge_point_id),
                _header(H_PROTOCOL, link.version),
                _header(H_MESSAGE_TYPE, ""),
            )
        )
        self._middle = b"\r\n" + b"\r\n".join(
            (_header(H_NODE, node_id), _header(H_EPOCH, epoch), _header(H_RECEIVED, ""))
        )
        self._tail = b"\r\n" + b"\r\n".join(
            (_header(H_REPLY, reply), _header(NATS_MSG_ID, f"{node_id}:{epoch}:"))
        )
        self._streams = (
            b"\r\n" + _header(NATS_EXPECTED_STREAM, gen_stream) + b"\r\n\r\n",
            b"\r\n" + _header(NATS_EXPECTED_STREAM, tx_stream) + b"\r\n\r\n",
        )
        #: The last token of the link's inbound subjects, `.<charge point token>`.
        self.subject_tail = link.token

    def encode(
        self,
        tx: bool,
        message_type: int,
        unique_id: str,
        action: str,
        received: str,
        number: int,
    ) -> bytes:
        """Args:
            tx: the frame goes to the transaction stream.
            message_type: 2 or 6.
            unique_id: its UniqueId.
            action: its action.
            received: `Ocpp-Rx-Ts`.
            number: the frame's number on the connection (the dedup key's last part).

        Returns:
            The header block of one frame, `NATS/1.0` to the blank line.
        """
        return b"".join(
            (
                self._head,
                str(message_type).encode(),
                b"\r\n",
                _header(H_MESSAGE_ID, unique_id),
                b"\r\n",
                _header(H_ACTION, action),
                self._middle,
                received.encode(),
                self._tail,
                str(number).encode(),
                self._streams[tx],
            )
        )


async def send_hpub(nc: Client, subject: str, reply: str, headers: bytes, payload: bytes) -> None:
    """Publish a message whose header block is already encoded: the HPUB command nats-py's
    `publish` writes, queued and flushed as it queues and flushes its own (one flusher write
    for what many publishes queued in one loop iteration). It reaches into nats-py's
    `_send_command` and `_flush_pending` (nats-py >= 2.16; tests/brokers checks the bytes
    against nats-py's own `publish`), because `publish` takes headers only as a dict and
    encodes it per message.

    Args:
        nc: a connected client.
        subject: the subject.
        reply: the reply subject.
        headers: the header block (`NatsFrameHeaders.encode`).
        payload: the body.
    """
    size = len(headers)
    command = f"HPUB {subject} {reply} {size} {size + len(payload)}\r\n".encode()
    client: Any = nc
    await client._send_command(b"".join((command, headers, payload, b"\r\n")))
    flushes = client._flush_queue
    if flushes is not None and flushes.empty():
        await client._flush_pending()


def _expire(ack: asyncio.Future[Msg]) -> None:
    """A PubAck's time is up: its publish sees a timeout (and retries while time is left)."""
    if not ack.done():
        ack.set_exception(nats.errors.TimeoutError())


@dataclass(frozen=True, slots=True)
class NatsOptions:
    """Settings of the NATS transport (`[upstream]` with `type = "nats"`, its `[upstream.options]`
    table, or a `[transports.<name>]` table with `type = "nats"`).

    Attributes:
        url: the server, `nats://host:4222` (several may be given comma-separated).
        node_id: this gateway process's id on the broker; empty: host name and pid.
        username, password: credentials for the server, if it wants them.
        subject_prefix: first token of every subject.
        tx_stream, gen_stream: the two inbound streams.
        owner_bucket, nodes_bucket: the KV buckets of ownership and node liveness.
        transaction_actions: CALLs that go to `tx_stream` (MeterValues only with a
            transactionId).
        publish_timeout: seconds a frame may wait for its PubAck (retries included) before the
            link is given up.
        connect_timeout: seconds allowed to reach the server.
        node_ttl: seconds a node stays alive in `nodes_bucket` without a refresh.
        command_timeout: seconds a command may wait for the charge point's answer.
        command_queue: commands that may wait per charge point behind the one in flight.
        tx_max_age, gen_max_age: seconds the streams keep messages (0: forever).
        max_bytes: size limit of each stream (-1: none); past it, publishes fail (DiscardNew).
        replicas: stream and bucket replicas (1 on a single server).
        duplicate_window: seconds of `Nats-Msg-Id` dedup.
    """

    url: str = "nats://127.0.0.1:4222"
    node_id: str = ""
    username: str | None = None
    password: str | None = None
    subject_prefix: str = "ocpp"
    tx_stream: str = "OCPP_TX"
    gen_stream: str = "OCPP_GEN"
    owner_bucket: str = "OCPP_OWNER"
    nodes_bucket: str = "OCPP_NODES"
    transaction_actions: tuple[str, ...] = DEFAULT_TRANSACTION_ACTIONS
    publish_timeout: float = 5.0
    connect_timeout: float = 5.0
    node_ttl: float = 15.0
    command_timeout: float = 30.0
    command_queue: int = 16
    tx_max_age: float = 7 * 86400.0
    gen_max_age: float = 86400.0
    max_bytes: int = -1
    replicas: int = 1
    duplicate_window: float = 120.0
    servers: tuple[str, ...] = field(init=False, default=())

    def check(self, key: str) -> list[str]:
        """Returns: the errors of these settings, each starting with `key`."""
        return url_errors(key, self.url, ("nats", "tls"))

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "servers", tuple(u.strip() for u in self.url.split(",") if u.strip())
        )
        if not self.node_id:
            object.__setattr__(self, "node_id", default_node_id())
        else:
            object.__setattr__(self, "node_id", identity_token(self.node_id))

    def subject(self, *tokens: str) -> str:
        """Args:
            tokens: subject tokens after the prefix.

        Returns:
            `<prefix>.<tokens...>`.
        """
        return ".".join((self.subject_prefix, *tokens))


async def connect(options: NatsOptions, name: str, **callbacks: Any) -> Client:
    """Connect to the servers of `options` (reconnecting forever once connected).

    Args:
        options: the settings.
        name: the client name the server shows.
        callbacks: nats-py callbacks (disconnected_cb, reconnected_cb, ...).

    Returns:
        The connected client.

    Raises:
        TransportUnavailable: no server could be reached within `connect_timeout`.
    """

    async def quiet_error(exc: Exception) -> None:
        log.debug("nats client error", extra={"error": type(exc).__name__})

    callbacks.setdefault("error_cb", quiet_error)
    try:
        return await nats.connect(
            servers=list(options.servers),
            name=name,
            user=options.username,
            password=options.password,
            connect_timeout=options.connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            **callbacks,
        )
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        log.warning(
            "cannot reach NATS",
            extra={"url": redact_url(options.url), "error": type(exc).__name__},
        )
        raise TransportUnavailable(f"cannot reach NATS: {type(exc).__name__}") from exc


async def ensure_layout(js: JetStreamContext, options: NatsOptions) -> tuple[KeyValue, KeyValue]:
    """Create the streams and buckets of the layout when missing (gateways and backends both
    call this, so either may start first). Existing ones are left as they are.

    Args:
        js: a JetStream context.
        options: the names and limits.

    Returns:
        The ownership and node buckets.

    Raises:
        nats.errors.Error: JetStream refused (not enabled, limits).
    """
    for stream, kind, max_age in (
        (options.tx_stream, "tx", options.tx_max_age),
        (options.gen_stream, "gen", options.gen_max_age),
    ):
        try:
            await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            await js.add_stream(
                api.StreamConfig(
                    name=stream,
                    subjects=[options.subject("in", kind, ">")],
                    retention=api.RetentionPolicy.LIMITS,
                    storage=api.StorageType.FILE,
                    discard=api.DiscardPolicy.NEW,
                    max_age=max_age or None,
                    max_bytes=options.max_bytes,
                    num_replicas=options.replicas,
                    duplicate_window=options.duplicate_window,
                )
            )
    buckets: list[KeyValue] = []
    for bucket, ttl in ((options.owner_bucket, None), (options.nodes_bucket, options.node_ttl)):
        try:
            buckets.append(await js.key_value(bucket))
        except nats.js.errors.BucketNotFoundError:
            buckets.append(
                await js.create_key_value(
                    api.KeyValueConfig(
                        bucket=bucket,
                        history=1,
                        ttl=ttl,
                        replicas=options.replicas,
                        storage=api.StorageType.FILE,
                    )
                )
            )
    return buckets[0], buckets[1]


class NatsClient:
    """The NATS I/O of a `BrokerTransport` (`transport.BrokerClient`): the layout of
    docs/brokers.md read and written with nats-py.

    Args:
        options: the settings.
    """

    broker = "NATS"
    errors: tuple[type[Exception], ...] = _ERRORS
    dedup_field = NATS_MSG_ID
    body_field = ""

    def __init__(self, options: NatsOptions) -> None:
        self.options = options
        self.node_id = options.node_id
        self.reply_address: str | bytes = options.subject("gw", self.node_id, "res")
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._owners: KeyValue | None = None
        self._nodes: KeyValue | None = None
        self._owner_prefix = f"$KV.{options.owner_bucket}."
        self._subs: list[Subscription] = []
        self._inbox: Inbox | None = None
        self._connected = False
        self._closed = False
        self._lock = asyncio.Lock()
        # PubAcks: one subscription on `<inbox>.*`, each publish waiting under its own token.
        self._ack_prefix = ""
        self._ack_count = 0
        self._acks: dict[str, asyncio.Future[Msg]] = {}
        self._subjects: dict[tuple[bool, str, str], str] = {}

    def ready(self) -> bool:
        """Returns: True while connected to NATS with the layout in place."""
        return self._connected and self._nc is not None and self._nc.is_connected

    # -- life cycle ---------------------------------------------------------------------------

    async def subscribe(self, inbox: Inbox) -> None:
        """Connect, create the layout when missing, subscribe this node's subjects and the
        ownership watch, write the liveness entry (once; nats-py reconnects by itself).

        Args:
            inbox: where what arrives goes.

        Raises:
            TransportUnavailable: NATS cannot be reached or JetStream refused.
        """
        async with self._lock:
            if self._nc is not None or self._closed:
                return
            self._inbox = inbox
            nc = await connect(
                self.options,
                f"ocpp-gateway {self.node_id}",
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
            try:
                js = nc.jetstream(timeout=self.options.publish_timeout)
                self._owners, self._nodes = await ensure_layout(js, self.options)
                subject = self.options.subject
                self._ack_prefix = nc.new_inbox() + "."
                self._subs = [
                    await nc.subscribe(self._ack_prefix + "*", cb=self._on_ack),
                    await nc.subscribe(str(self.reply_address), cb=self._on_answer),
                    await nc.subscribe(subject("gw", self.node_id, "cmd"), cb=self._on_command),
                    await nc.subscribe(subject("gw", self.node_id, "probe"), cb=self._on_probe),
                    await js.subscribe(
                        f"{self._owner_prefix}>",
                        cb=self._on_owner_change,
                        ordered_consumer=True,
                        deliver_policy=api.DeliverPolicy.NEW,
                        headers_only=True,
                    ),
                ]
                await self._nodes.put(self.node_id, encode_node_value(self.node_id))
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                await nc.close()
                raise TransportUnavailable(f"NATS layout unavailable: {exc}") from exc
            self._nc, self._js = nc, js
            self._connected = True

    async def close(self) -> None:
        """Leave the node bucket, unsubscribe, close the connection."""
        self._closed = True
        nc = self._nc
        if nc is not None and nc.is_connected:
            # Unsubscribing stops the ordered consumer's own tasks (heartbeat and flow control
            # checks), which would otherwise outlive the connection by seconds.
            for sub in self._subs:
                with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
                    await sub.unsubscribe()
            with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
                assert self._nodes is not None
                await asyncio.wait_for(self._nodes.delete(self.node_id), 2.0)
            with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
                await asyncio.wait_for(nc.flush(), 2.0)
        if nc is not None:
            await nc.close()
        self._connected = False

    async def refresh_node(self, limit: float) -> None:
        """Write the liveness entry (bounded by the JetStream timeout); a failure is logged."""
        assert self._nodes is not None
        try:
            await self._nodes.put(self.node_id, encode_node_value(self.node_id))
        except (*_ERRORS, TimeoutError) as exc:
            log.warning("node heartbeat failed", extra={"error": type(exc).__name__})

    # -- ownership ----------------------------------------------------------------------------

    async def claim(self, token: str, version: str) -> int:
        """Create the KV entry, or update it from the revision read: its revision is the epoch.

        Raises:
            TransportUnavailable: other claims won every attempt.
        """
        owners = self._owners
        assert owners is not None
        value = encode_owner_value(self.node_id, version, received_timestamp())
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                return await owners.create(token, value)
            except nats.js.errors.KeyWrongLastSequenceError:
                pass
            try:
                entry = await owners.get(token)
            except nats.js.errors.KeyNotFoundError:  # also KeyDeletedError
                continue
            try:
                return await owners.update(token, value, last=entry.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
        raise TransportUnavailable("ownership contended")

    async def read_owner(self, token: str) -> tuple[str, str] | None:
        """Returns: (node, revision) of the KV entry, None when there is none."""
        owners = self._owners
        assert owners is not None
        try:
            entry = await owners.get(token)
        except nats.js.errors.KeyNotFoundError:
            return None
        node = decode_owner_node(entry.value)
        return (node, str(entry.revision)) if node else None

    async def ask_probe(
        self, node: str, charge_point_id: str, epoch: str, limit: float, ping: bool
    ) -> Holder:
        """A request on `<p>.gw.<node>.probe`: no responders means that node is gone."""
        nc = self._nc
        assert nc is not None
        body = encode_nats_probe(charge_point_id, epoch, ping)
        try:
            reply = await nc.request(self.options.subject("gw", node, "probe"), body, limit)
        except nats.errors.NoRespondersError:
            return holder_state(False, None)
        except nats.errors.TimeoutError:
            return holder_state(True, None)
        return holder_state(True, reply.data)

    async def drop_owner(self, token: str, epoch: int) -> None:
        """Delete the KV entry at revision `epoch` (fails when someone else owns it now)."""
        owners = self._owners
        assert owners is not None
        await owners.delete(token, last=epoch)

    # -- frames to the broker -----------------------------------------------------------------

    async def publish(
        self,
        link: BrokerLink,
        tx: bool,
        message_type: int,
        unique_id: str,
        action: str,
        frame: bytes,
    ) -> None:
        """Publish one charge point frame to its stream and wait for the PubAck; retried with
        the same `Nats-Msg-Id` until `publish_timeout`.

        The headers are encoded here (`NatsFrameHeaders`: what is fixed per connection once,
        in `link.wire`) and the PubAck comes back on this client's one acknowledgement
        subscription, matched by the reply subject's last token: no request, no header dict
        and no inbox per frame.

        Args:
            link: the charge point's link.
            tx: it goes to the transaction stream.
            message_type: 2 (CALL) or 6 (SEND).
            unique_id: its UniqueId.
            action: its action (a subject token).
            frame: the bytes, unchanged.

        Raises:
            TransportUnavailable: no PubAck within `publish_timeout`, or the stream refused.
        """
        nc = self._nc
        if nc is None or nc.is_closed:
            raise TransportUnavailable("NATS unavailable")
        wire = link.wire
        if wire is None:
            options = self.options
            wire = link.wire = NatsFrameHeaders(
                link, self.node_id, str(self.reply_address), options.tx_stream, options.gen_stream
            )
        headers = wire.encode(
            tx, message_type, unique_id, action, received_timestamp(), link.published
        )
        subject = self._subject(tx, link.version, action) + wire.subject_tail
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.publish_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 or link.ended:
                break
            try:
                ack = orjson.loads(await self._request(nc, subject, headers, frame, remaining))
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                # Same Nats-Msg-Id on the retry: the stream keeps one copy.
                raise_if_cancelling()
                await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
                continue
            except (nats.errors.Error, OSError, orjson.JSONDecodeError) as exc:
                raise TransportUnavailable(f"NATS refused the frame: {exc}") from exc
            if not isinstance(ack, dict) or "error" in ack:
                error = ack.get("error") if isinstance(ack, dict) else ack
                raise TransportUnavailable(f"NATS refused the frame: {error}")
            return
        raise TransportUnavailable("no PubAck in time")

    def _subject(self, tx: bool, version: str, action: str) -> str:
        """The inbound subject up to the charge point's token, `<p>.in.<tx|gen>.<v>.<action>.`,
        kept per (stream, version, action) (a bounded table: actions come from the schemas,
        or from anything a charge point sends when validation is off)."""
        key = (tx, version, action)
        subject = self._subjects.get(key)
        if subject is None:
            kind = "tx" if tx else "gen"
            token = identity_token(action) or "_"
            subject = self.options.subject("in", kind, VERSION_TOKENS[version], token, "")
            if len(self._subjects) < _SUBJECTS_KEPT:
                self._subjects[key] = subject
        return subject

    async def _request(
        self, nc: Client, subject: str, headers: bytes, frame: bytes, limit: float
    ) -> bytes:
        """Publish `frame` with encoded `headers` and a reply subject on this client's
        acknowledgement subscription; return the reply's body.

        Raises:
            nats.errors.TimeoutError: no reply within `limit` (or the connection is down).
            nats.errors.NoRespondersError: no stream takes the subject.
            nats.errors.Error: the connection is closed.
        """
        if not nc.is_connected:
            raise nats.errors.TimeoutError
        self._ack_count += 1
        token = str(self._ack_count)
        loop = asyncio.get_running_loop()
        ack: asyncio.Future[Msg] = loop.create_future()
        self._acks[token] = ack
        timer = loop.call_later(min(limit, 2.0), _expire, ack)
        try:
            await send_hpub(nc, subject, self._ack_prefix + token, headers, frame)
            msg = await ack
        finally:
            timer.cancel()
            self._acks.pop(token, None)
        if msg.headers and msg.headers.get(NATS_STATUS) == NO_RESPONDERS:
            raise nats.errors.NoRespondersError
        return msg.data

    async def respond(
        self, reply: str, status: CommandStatus, frame: bytes, fields: Mapping[str, str]
    ) -> None:
        """Publish a command's outcome to the request's inbox (`contract.nats_outcome_headers`)."""
        nc = self._nc
        if not reply or nc is None or nc.is_closed:
            return
        await nc.publish(reply, frame, headers=nats_outcome_headers(status, fields, self.node_id))

    # -- messages from the broker -------------------------------------------------------------

    async def _on_ack(self, msg: Msg) -> None:
        ack = self._acks.get(msg.subject[len(self._ack_prefix) :])
        if ack is not None and not ack.done():
            ack.set_result(msg)

    async def _on_answer(self, msg: Msg) -> None:
        headers = msg.headers or {}
        assert self._inbox is not None
        self._inbox.answer(headers.get(H_CHARGE_POINT, ""), headers.get(H_EPOCH, ""), msg.data)

    async def _on_command(self, msg: Msg) -> None:
        headers = msg.headers or {}
        assert self._inbox is not None
        self._inbox.command(
            msg.data,
            msg.reply,
            headers.get(H_CHARGE_POINT, ""),
            headers.get(H_EPOCH, ""),
            headers.get(H_COMMAND_ID, ""),
            headers,  # a refusal carries the command's own headers back
        )

    async def _on_probe(self, msg: Msg) -> None:
        request = decode_nats_probe(msg.data)
        if request is not None and self._inbox is not None:
            # This subscription's callbacks run one after another: the answer comes from a task.
            self._inbox.probe(request, msg.respond)

    async def _on_owner_change(self, msg: Msg) -> None:
        # A newer owner (another node, or a newer connection here): older links go.
        token = msg.subject[len(self._owner_prefix) :]
        assert self._inbox is not None
        self._inbox.owner_changed(token, msg.metadata.sequence.stream)

    async def _on_disconnected(self) -> None:
        if self._closed:
            return
        first, self._connected = self._connected, False
        if self._inbox is not None:
            self._inbox.lost(first)

    async def _on_reconnected(self) -> None:
        if self._closed or self._js is None:
            return
        log.info("NATS connection back")
        self._connected = True
        with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
            assert self._nodes is not None
            await self._nodes.put(self.node_id, encode_node_value(self.node_id))


class NatsTransport(BrokerTransport):
    """The NATS JetStream transport: a `BrokerTransport` over a `NatsClient`. It connects on
    `start` (or on the first `open`).

    Args:
        name: the transport's configured name.
        options: the settings.
    """

    options: NatsOptions

    def __init__(self, name: str, options: NatsOptions) -> None:
        super().__init__(name, options, NatsClient(options))

    @classmethod
    def from_options(cls, name: str, options: NatsOptions, max_message_bytes: int = 0) -> Self:
        """Build the transport from its typed settings (the registry's entry point)."""
        return cls(name, options)
