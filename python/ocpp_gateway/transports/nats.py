"""NATS JetStream transport: charge point frames into durable streams, with broker acknowledgement.

Answers and commands go over core NATS; the ownership of each charge point is in a KV bucket
whose revision is the connection epoch.

Layout (`<p>` is `subject_prefix`, `<ver>` 16 | 201 | 21, `<cp>` the identity token of
`broker.identity_token`, `<node>` the node id):

- transaction-class CALLs: `<p>.in.tx.<ver>.<Action>.<cp>`, stream `tx_stream`;
- every other CALL (and 2.1 SEND): `<p>.in.gen.<ver>.<Action>.<cp>`, stream `gen_stream`;
- backend answers to those CALLs: `<p>.gw.<node>.res` (the `Ocpp-Reply` header), core NATS;
- backend commands to a charge point: a request to `<p>.gw.<node>.cmd`, core NATS;
- who holds a charge point: KV `owner_bucket`, key `<cp>`, value JSON `{node, proto, since}`,
  whose revision is the connection epoch;
- which nodes are alive: KV `nodes_bucket` (TTL `node_ttl`), key `<node>`, refreshed every
  third of the TTL.

A frame is handed over once JetStream acknowledged it (PubAck); a publish is retried with the
same `Nats-Msg-Id` (`<node>:<epoch>:<n>`, n the frame's number on its connection) until
`publish_timeout`, then the link is lost (the relay closes the charge point socket with 1013).
When the connection to NATS drops, every link is lost and `open` refuses new charge points until
it is back. The wire contract for
backend developers is docs/brokers.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from ocpp_gateway.aio import raise_if_cancelling
from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.logs import redact_url
from ocpp_gateway.transports.base import Holder
from ocpp_gateway.transports.broker import (
    DEFAULT_TRANSACTION_ACTIONS,
    H_ACTION,
    H_CHARGE_POINT,
    H_COMMAND_ID,
    H_EPOCH,
    H_MESSAGE_ID,
    H_NODE,
    H_STATUS,
    PROBE_ANSWERS,
    VERSION_TOKENS,
    BrokerLink,
    BrokerTransportBase,
    CommandStatus,
    default_node_id,
    identity_token,
    is_transaction,
    received_timestamp,
    url_errors,
)

__all__ = ["NatsOptions", "NatsTransport", "connect", "ensure_layout"]

log = logging.getLogger("ocpp_gateway.transports.nats")

_CLAIM_ATTEMPTS = 8


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


async def connect(options: NatsOptions, name: str, **callbacks: Any) -> NatsClient:
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


class NatsTransport(BrokerTransportBase[NatsOptions]):
    """The NATS JetStream transport (see the module docstring).

    It connects on `start` (or on the first `open`). Hooks for the server: `ready()` (False
    while NATS is unreachable: `/readyz` answers 503), `stats` (counters for the metrics),
    `connected_links` (links open now).

    Args:
        name: the transport's configured name.
        options: the settings.
    """

    _broker = "NATS"
    _broker_errors = (nats.errors.Error, OSError)
    _dedup_field = "Nats-Msg-Id"

    def __init__(self, name: str, options: NatsOptions) -> None:
        super().__init__(name, options)
        self._reply_subject = options.subject("gw", self.node_id, "res")
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._owners: KeyValue | None = None
        self._nodes: KeyValue | None = None
        self._owner_prefix = f"$KV.{options.owner_bucket}."
        self._subs: list[Subscription] = []
        self._start_lock = asyncio.Lock()

    # -- hooks for the server -----------------------------------------------------------------

    def ready(self) -> bool:
        """Returns: True while connected to NATS with the layout in place."""
        return self._connected and self._nc is not None and self._nc.is_connected

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create the layout when missing, subscribe, start the node heartbeat.

        Raises:
            TransportUnavailable: NATS cannot be reached or JetStream refused.
        """
        async with self._start_lock:
            if self._nc is not None or self._closed:
                return
            nc = await connect(
                self.options,
                f"ocpp-gateway {self.node_id}",
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
            try:
                js = nc.jetstream(timeout=self.options.publish_timeout)
                self._owners, self._nodes = await ensure_layout(js, self.options)
                self._subs = [
                    await nc.subscribe(self._reply_subject, cb=self._on_answer),
                    await nc.subscribe(
                        self.options.subject("gw", self.node_id, "cmd"), cb=self._on_command
                    ),
                    await nc.subscribe(
                        self.options.subject("gw", self.node_id, "probe"), cb=self._on_probe
                    ),
                    await js.subscribe(
                        f"{self._owner_prefix}>",
                        cb=self._on_owner_change,
                        ordered_consumer=True,
                        deliver_policy=api.DeliverPolicy.NEW,
                        headers_only=True,
                    ),
                ]
                await self._nodes.put(self.node_id, self._node_value())
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                await nc.close()
                raise TransportUnavailable(f"NATS layout unavailable: {exc}") from exc
            self._nc, self._js = nc, js
            self._connected = True
            self._heartbeat = asyncio.create_task(self._heartbeat_loop())

    async def _shut_down(self) -> None:
        """Leave the node bucket, unsubscribe, close the connection."""
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

    # -- ownership ----------------------------------------------------------------------------

    async def _ensure_started(self) -> None:
        if self._nc is None:
            await self.start()
        if not self.ready() or self._owners is None:
            raise TransportUnavailable("NATS unavailable")

    async def _claim_epoch(self, token: str, subprotocol: str) -> int:
        """Create the KV entry, or update it from the revision read: its revision is the epoch."""
        owners = self._owners
        assert owners is not None
        value = orjson.dumps(
            {"node": self.node_id, "proto": subprotocol, "since": received_timestamp()}
        )
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

    async def _read_owner(self, token: str) -> tuple[str, str] | None:
        owners = self._owners
        assert owners is not None
        try:
            entry = await owners.get(token)
            node = str(orjson.loads(entry.value or b"{}").get("node") or "")
        except (nats.js.errors.KeyNotFoundError, orjson.JSONDecodeError, AttributeError):
            return None
        return (node, str(entry.revision)) if node else None

    async def _ask_probe(
        self, node: str, charge_point_id: str, epoch: str, limit: float, ping: bool
    ) -> Holder:
        """A request on `<p>.gw.<node>.probe`: no responders means that node is gone."""
        nc = self._nc
        assert nc is not None
        body = orjson.dumps({"cp": charge_point_id, "epoch": int(epoch), "ping": ping})
        try:
            reply = await nc.request(self.options.subject("gw", node, "probe"), body, limit)
        except nats.errors.NoRespondersError:
            return "free"  # nobody listens for that node: it is gone, with its sockets
        except nats.errors.TimeoutError:
            return "live"  # no answer: the holder is busy, not known to have lost it
        return PROBE_ANSWERS.get(reply.data, "live")

    async def _on_probe(self, msg: Msg) -> None:
        try:
            asked = orjson.loads(msg.data)
            charge_point_id, epoch = str(asked["cp"]), str(asked["epoch"])
            ping = bool(asked.get("ping", True))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return
        # This subscription's callbacks run one after another: the answer comes from a task.
        self._answer_probe(charge_point_id, epoch, msg.respond, ping)

    async def _drop_owner(self, link: BrokerLink) -> None:
        owners = self._owners
        assert owners is not None
        # Fails (wrong last sequence) when someone else owns it now: then it is theirs.
        await owners.delete(link.token, last=link.epoch)

    # -- frames to the broker -----------------------------------------------------------------

    async def publish_frame(
        self, link: BrokerLink, frame: bytes, message_type: int, unique_id: str, action: str
    ) -> None:
        """Publish one charge point frame to its stream and wait for the PubAck.

        Args:
            link: the charge point's link.
            frame: the bytes, unchanged.
            message_type: 2 (CALL) or 6 (SEND).
            unique_id: the frame's UniqueId.
            action: its action.

        Raises:
            TransportUnavailable: no PubAck within `publish_timeout`.
        """
        nc = self._nc
        if nc is None or not self.ready():
            raise TransportUnavailable("NATS unavailable")
        options = self.options
        tx = message_type == 2 and is_transaction(action, frame, self._tx_actions)
        stream = options.tx_stream if tx else options.gen_stream
        subject = options.subject(
            "in",
            "tx" if tx else "gen",
            VERSION_TOKENS[link.version],
            identity_token(action) or "_",
            link.token,
        )
        headers = self._frame_fields({}, link, message_type, unique_id, action, self._reply_subject)
        headers["Nats-Expected-Stream"] = stream
        stats = self.stats
        stats.publishing += 1
        try:
            await self._publish(nc, link, subject, stream, frame, headers)
        finally:
            stats.publishing -= 1

    async def _publish(
        self,
        nc: NatsClient,
        link: BrokerLink,
        subject: str,
        stream: str,
        frame: bytes,
        headers: dict[str, Any],
    ) -> None:
        stats = self.stats
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.options.publish_timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 or link.ended:
                break
            try:
                # A JetStream publish is a request answered by the PubAck; made here rather
                # than through js.publish, which parses each PubAck into a dataclass.
                reply = await nc.request(subject, frame, min(remaining, 2.0), headers=headers)
                ack = orjson.loads(reply.data)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                # Same Nats-Msg-Id on the retry: the stream keeps one copy.
                raise_if_cancelling()
                await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
                continue
            except (nats.errors.Error, OSError, orjson.JSONDecodeError) as exc:
                stats.publish_failures += 1
                raise TransportUnavailable(f"NATS refused the frame: {exc}") from exc
            if not isinstance(ack, dict) or "error" in ack:
                stats.publish_failures += 1
                error = ack.get("error") if isinstance(ack, dict) else ack
                raise TransportUnavailable(f"NATS refused the frame: {error}")
            stats.published += 1
            stats.publish_seconds += loop.time() - started
            return
        stats.publish_failures += 1
        raise TransportUnavailable("no PubAck in time")

    # -- messages from the broker -------------------------------------------------------------

    async def _on_answer(self, msg: Msg) -> None:
        headers = msg.headers or {}
        link = self._links.live(headers.get(H_CHARGE_POINT, ""), headers.get(H_EPOCH, ""))
        if link is None:
            self.stats.stale_dropped += 1
            return
        link.deliver(msg.data)

    async def _on_command(self, msg: Msg) -> None:
        headers = msg.headers or {}
        self._take_command(
            msg.data,
            msg.reply,
            headers.get(H_CHARGE_POINT, ""),
            headers.get(H_EPOCH, ""),
            headers.get(H_COMMAND_ID, ""),
            echo=headers,  # a refusal carries the command's own headers back
        )

    def _respond(
        self, reply: str, status: CommandStatus, frame: bytes, fields: Mapping[str, str]
    ) -> None:
        """Publish the outcome to the request's inbox; its headers: the non-empty `fields`,
        `Ocpp-Status` and `Ocpp-Node`."""
        nc = self._nc
        if not reply or nc is None or nc.is_closed:
            return
        out = {
            key: fields[key]
            for key in (H_CHARGE_POINT, H_EPOCH, H_MESSAGE_ID, H_ACTION, H_COMMAND_ID)
            if fields.get(key)
        }
        out[H_STATUS] = status.value
        out[H_NODE] = self.node_id
        self._in_background(nc.publish(reply, frame, headers=out))

    async def _on_owner_change(self, msg: Msg) -> None:
        # A newer owner (another node, or a newer connection here): older links go.
        token = msg.subject[len(self._owner_prefix) :]
        self._links.owner_changed(token, msg.metadata.sequence.stream)

    # -- connection events --------------------------------------------------------------------

    async def _on_disconnected(self) -> None:
        if self._closed:
            return
        self._connected = False
        self.stats.disconnects += 1
        log.warning("NATS connection lost: closing every charge point link")
        self._links.lose_all()

    async def _on_reconnected(self) -> None:
        if self._closed or self._js is None:
            return
        log.info("NATS connection back")
        self._connected = True
        with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
            assert self._nodes is not None
            await self._nodes.put(self.node_id, self._node_value())

    async def _refresh_node(self, limit: float) -> None:
        assert self._nodes is not None
        await self._nodes.put(self.node_id, self._node_value())  # bounded by the JetStream timeout

    async def _heartbeat_failed(self, exc: Exception) -> None:
        log.warning("node heartbeat failed", extra={"error": type(exc).__name__})
