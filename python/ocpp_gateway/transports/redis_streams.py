"""Redis Streams transport: charge point frames into two streams read by consumer groups.

Answers and commands go over pub/sub; the ownership of each charge point is a hash claimed
atomically with an epoch, node liveness keys with a TTL.

Layout (`<p>` is `key_prefix`, `<cp>` the identity token of `broker.identity_token`, `<node>`
the node id):
- transaction-class CALLs: stream `<p>:in:tx`; every other CALL (and 2.1 SEND): `<p>:in:gen`.
  Each entry has the field `frame` (the bytes, unchanged) and the metadata fields `Ocpp-Cp`,
  `Ocpp-Proto`, `Ocpp-Type`, `Ocpp-Msg-Id`, `Ocpp-Action`, `Ocpp-Node`, `Ocpp-Epoch`,
  `Ocpp-Rx-Ts`, `Ocpp-Reply`, `Ocpp-Dedup` (`<node>:<epoch>:<n>`, n the frame's number on
  its connection);
- backend answers: PUBLISH to the `Ocpp-Reply` channel `<p>:gw:<node>:res` a JSON envelope
  `{"cp", "epoch", "frame"}` (`frame`: the answer frame's text);
- commands: PUBLISH to `<p>:gw:<node>:cmd` a JSON envelope `{"cp", "epoch", "frame", "reply",
  "cmd_id"}`; the node LPUSHes `{"status", "frame", ...}` to the list `reply` (expiring after
  a minute); no receiver on the channel means offline;
- ownership: hash `<p>:owner:<cp>` = `{node, epoch, proto, since}`, written by one Lua script
  that takes the epoch from INCR `<p>:epoch` (never below the server clock in µs, so that it
  grows across a restart that lost the counter) and announces `<cp> <epoch>` on the channel
  `<p>:owners`, where every node listens (the old holder's link then ends);
- liveness: `<p>:node:<node>` with a TTL of `node_ttl`, refreshed every third of it.

A frame is handed over once XADD returned (and, with `wait_replicas`, WAIT confirmed that many
replicas within `publish_timeout`). When Redis cannot be reached every link is lost, `open`
refuses, and the transport reconnects in the background. The wire contract for backend
developers is docs/brokers.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.client import PubSub

from ocpp_gateway.aio import raise_if_cancelling, stop
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
    PROBE_ANSWERS,
    BrokerLink,
    BrokerTransportBase,
    CommandStatus,
    default_node_id,
    identity_token,
    is_transaction,
    received_timestamp,
    url_errors,
)

__all__ = [
    "CLAIM_SCRIPT",
    "H_DEDUP",
    "RELEASE_SCRIPT",
    "RedisStreamsOptions",
    "RedisStreamsTransport",
    "connect",
]

log = logging.getLogger("ocpp_gateway.transports.redis_streams")

H_DEDUP = "Ocpp-Dedup"
_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

# KEYS: owner hash, epoch counter. ARGV: node, proto, since, owners channel, token.
# The epoch never falls below the server clock in microseconds, so it keeps growing even after
# a restart that lost the counter (a server without persistence).
CLAIM_SCRIPT = """
local epoch = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
if epoch < floor then
  epoch = floor
  redis.call('SET', KEYS[2], string.format('%.0f', epoch))
end
local text = string.format('%.0f', epoch)
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'epoch', text, 'proto', ARGV[2], 'since', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. ' ' .. text)
return text
"""
# KEYS: owner hash. ARGV: the epoch that must still be there.
RELEASE_SCRIPT = """
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class RedisStreamsOptions:
    """Settings of the Redis Streams transport (`[upstream]` with `type = "redis_streams"`, its
    `[upstream.options]` table, or a `[transports.<name>]` table).

    Attributes:
        url: `redis://host:6379/0` (`rediss://` for TLS).
        node_id: this gateway process's id on the broker; empty: host name and pid.
        username, password: credentials, if the server wants them.
        key_prefix: first part of every key and channel.
        transaction_actions: CALLs that go to the transaction stream.
        publish_timeout: seconds a frame may wait for XADD (and WAIT) before the link is lost.
        connect_timeout: seconds allowed to reach the server.
        wait_replicas: replicas WAIT must confirm after each XADD (0: no WAIT, a single
            server).
        max_len: approximate MAXLEN of each stream (0: never trimmed; trimming drops entries
            no backend has read yet).
        node_ttl: seconds a node stays alive without a refresh.
        command_timeout: seconds a command may wait for the charge point's answer.
        command_queue: commands that may wait per charge point behind the one in flight.
        pool_size: connections to the server at most; a command finding all of them busy
            waits for one (bounded by its own timeout) instead of failing, so a reconnect
            storm queues its ownership claims rather than refusing charge points.
    """

    url: str = "redis://127.0.0.1:6379/0"
    node_id: str = ""
    username: str | None = None
    password: str | None = None
    key_prefix: str = "ocpp"
    transaction_actions: tuple[str, ...] = DEFAULT_TRANSACTION_ACTIONS
    publish_timeout: float = 5.0
    connect_timeout: float = 5.0
    wait_replicas: int = 0
    max_len: int = 0
    node_ttl: float = 15.0
    command_timeout: float = 30.0
    command_queue: int = 16
    pool_size: int = 64

    def check(self, key: str) -> list[str]:
        """Returns: the errors of these settings, each starting with `key`."""
        errors = url_errors(key, self.url, ("redis", "rediss", "unix"))
        if self.pool_size < 4:
            errors.insert(0, f"{key}.pool_size: at least 4, got {self.pool_size}")
        return errors

    def __post_init__(self) -> None:
        node = identity_token(self.node_id) if self.node_id else default_node_id()
        object.__setattr__(self, "node_id", node)

    def key(self, *parts: str) -> str:
        """Args:
            parts: key parts after the prefix.

        Returns:
            `<prefix>:<parts...>`.
        """
        return ":".join((self.key_prefix, *parts))


def connect(options: RedisStreamsOptions, pool_size: int = 0) -> aioredis.Redis:
    """A client for the server of `options` (connections open on first use, at most
    `pool_size`; a command waits for a free one). It sets no socket timeout, so that blocking
    reads (pub/sub, BLPOP, XREADGROUP BLOCK) may wait; callers bound their own commands.

    Args:
        options: the settings.
        pool_size: connections at most, instead of `options.pool_size`.

    Returns:
        The client (bytes in, bytes out).
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        options.url,
        max_connections=pool_size or options.pool_size,
        timeout=None,
        username=options.username,
        password=options.password,
        socket_connect_timeout=options.connect_timeout,
        socket_timeout=None,
        decode_responses=False,
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)


async def _close_pubsub(pubsub: PubSub) -> None:
    """Close a pub/sub connection. redis-py 8.1 leaves `PubSub.aclose` unannotated and 8.2
    annotates it: called through Any, strict mypy accepts both."""
    closer: Any = pubsub
    await closer.aclose()


def _text(value: bytes | str | None) -> str:
    """A reply value as text ("" for a missing one)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamsTransport(BrokerTransportBase[RedisStreamsOptions]):
    """The Redis Streams transport (see the module docstring).

    Hooks for the server: `ready()` (False while Redis is unreachable: `/readyz` answers 503),
    `stats` (counters for the metrics), `connected_links` (links open now).

    Args:
        name: the transport's configured name.
        options: the settings.
    """

    _broker = "Redis"
    _broker_errors = (*_ERRORS, redis.exceptions.RedisError)
    _dedup_field = H_DEDUP

    def __init__(self, name: str, options: RedisStreamsOptions) -> None:
        super().__init__(name, options)
        self._tx_stream = options.key("in", "tx")
        self._gen_stream = options.key("in", "gen")
        self._reply_channel = options.key("gw", self.node_id, "res").encode()
        self._command_channel = options.key("gw", self.node_id, "cmd").encode()
        self._probe_channel = options.key("gw", self.node_id, "probe").encode()
        self._probes: dict[str, asyncio.Future[bytes]] = {}  # probe id -> the holder's answer
        self._owners_channel = options.key("owners").encode()
        self._node_key = options.key("node", self.node_id)
        self._redis: aioredis.Redis | None = None
        # The node key's refresh has a connection of its own: a pool busy with a storm's
        # claims must not starve it (a refresh that cannot run means Redis is away).
        self._liveness: aioredis.Redis | None = None
        self._claim: Any = None
        self._release: Any = None
        self._started: asyncio.Event | None = None
        self._listener: asyncio.Task[None] | None = None

    # -- hooks for the server -----------------------------------------------------------------

    def ready(self) -> bool:
        """Returns: True while Redis answers and this node listens to its channels."""
        return self._connected

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (in the background, reconnecting while Redis is away) and wait up to
        `connect_timeout` for the first connection.

        Raises:
            TransportUnavailable: Redis could not be reached in time.
        """
        if self._closed:
            raise TransportUnavailable("transport closed")
        if self._started is None:
            self._started = asyncio.Event()
            self._redis = connect(self.options)
            self._liveness = connect(self.options, pool_size=1)
            self._claim = self._redis.register_script(CLAIM_SCRIPT)
            self._release = self._redis.register_script(RELEASE_SCRIPT)
            self._listener = asyncio.create_task(self._listen_loop())
            self._heartbeat = asyncio.create_task(self._heartbeat_loop())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._started.wait(), self.options.connect_timeout)
        if not self._connected:
            raise TransportUnavailable("cannot reach Redis")

    async def _shut_down(self) -> None:
        """Stop the listener, leave the node key, close the clients."""
        await stop([self._listener])
        redis_client = self._redis
        if redis_client is not None:
            if self._connected:
                with contextlib.suppress(*_ERRORS):
                    await asyncio.wait_for(redis_client.delete(self._node_key), 2.0)
            await redis_client.aclose()
        if self._liveness is not None:
            await self._liveness.aclose()

    # -- ownership ----------------------------------------------------------------------------

    async def _ensure_started(self) -> None:
        if not self._connected:
            await self.start()

    async def _claim_epoch(self, token: str, subprotocol: str) -> int:
        """The claim script: a new epoch from `<p>:epoch`, announced on `<p>:owners`."""
        options = self.options
        epoch = await self._claim(
            keys=[options.key("owner", token), options.key("epoch")],
            args=[self.node_id, subprotocol, received_timestamp(), self._owners_channel, token],
        )
        return int(epoch)

    async def _read_owner(self, token: str) -> tuple[str, str] | None:
        assert self._redis is not None
        entry = await self._redis.hmget(self.options.key("owner", token), "node", "epoch")
        holder, epoch = (_text(value) for value in entry)
        return (holder, epoch) if holder and epoch else None

    async def _ask_probe(
        self, node: str, charge_point_id: str, epoch: str, limit: float, ping: bool
    ) -> Holder:
        """A probe envelope on the holder's command channel, no subscriber there meaning it is
        gone; the answer comes back on this node's probe channel (the pub/sub listener), so no
        pool connection is held while the holder pings."""
        redis_client = self._redis
        assert redis_client is not None
        probe_id = uuid.uuid4().hex
        answer = self._probes[probe_id] = asyncio.get_running_loop().create_future()
        asked = orjson.dumps(
            {
                "probe": probe_id,
                "cp": charge_point_id,
                "epoch": epoch,
                "ping": ping,
                "frame": "",
                "reply": self._probe_channel.decode(),
            }
        )
        try:
            async with asyncio.timeout(self.options.publish_timeout):
                listening = await redis_client.publish(self.options.key("gw", node, "cmd"), asked)
            if not listening:
                return "free"  # nobody listens for that node: it is gone, with its sockets
            try:
                return PROBE_ANSWERS.get(await asyncio.wait_for(answer, limit), "live")
            except TimeoutError:
                return "live"  # no answer: the holder is busy, not known to have lost it
        finally:
            self._probes.pop(probe_id, None)

    async def _drop_owner(self, link: BrokerLink) -> None:
        await self._release(keys=[self.options.key("owner", link.token)], args=[link.epoch])

    # -- frames to the broker -----------------------------------------------------------------

    async def publish_frame(
        self, link: BrokerLink, frame: bytes, message_type: int, unique_id: str, action: str
    ) -> None:
        """XADD one charge point frame to its stream (then WAIT for replicas when configured).

        Args:
            link: the charge point's link.
            frame: the bytes, unchanged.
            message_type: 2 (CALL) or 6 (SEND).
            unique_id: the frame's UniqueId.
            action: its action.

        Raises:
            TransportUnavailable: Redis did not take it within `publish_timeout`.
        """
        redis_client = self._redis
        if redis_client is None or not self._connected:
            raise TransportUnavailable("Redis unavailable")
        options = self.options
        tx = message_type == 2 and is_transaction(action, frame, self._tx_actions)
        fields = self._frame_fields(
            {"frame": frame}, link, message_type, unique_id, action, self._reply_channel
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        stats = self.stats
        stats.publishing += 1
        try:
            async with asyncio.timeout(options.publish_timeout):
                if options.wait_replicas > 0:
                    pipe = redis_client.pipeline(transaction=False)
                    self._xadd(pipe, tx, fields)
                    wait_ms = int(options.publish_timeout * 1000)
                    pipe.execute_command("WAIT", options.wait_replicas, wait_ms)
                    replies = await pipe.execute()
                    if int(replies[-1]) < options.wait_replicas:
                        raise TransportUnavailable("replicas did not confirm the frame")
                else:
                    await self._xadd(redis_client, tx, fields)
        except (*_ERRORS, redis.exceptions.RedisError, TimeoutError) as exc:
            stats.publish_failures += 1
            raise TransportUnavailable(
                f"Redis did not take the frame: {type(exc).__name__}"
            ) from exc
        except TransportUnavailable:
            stats.publish_failures += 1
            raise
        finally:
            stats.publishing -= 1
        stats.published += 1
        stats.publish_seconds += loop.time() - started

    def _xadd(self, client: Any, tx: bool, fields: dict[Any, Any]) -> Any:
        stream = self._tx_stream if tx else self._gen_stream
        if self.options.max_len > 0:
            return client.xadd(stream, fields, maxlen=self.options.max_len, approximate=True)
        return client.xadd(stream, fields)

    # -- messages from the broker -------------------------------------------------------------

    async def _listen_loop(self) -> None:
        """Hold the pub/sub connection: answers, commands, ownership changes. Reconnects with
        a short back-off; while it is down the transport is not ready and has no links."""
        assert self._redis is not None and self._started is not None
        delay = 0.1
        while True:
            pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                async with asyncio.timeout(self.options.connect_timeout):
                    await pubsub.subscribe(
                        self._reply_channel,
                        self._command_channel,
                        self._owners_channel,
                        self._probe_channel,
                    )
                    await self._redis.set(
                        self._node_key, self._node_value(), px=int(self.options.node_ttl * 1000)
                    )
                self._connected = True
                self._started.set()
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._dispatch(message["channel"], message["data"])
            except asyncio.CancelledError:
                with contextlib.suppress(*_ERRORS, redis.exceptions.RedisError):
                    await _close_pubsub(pubsub)
                raise
            except (*_ERRORS, redis.exceptions.RedisError, TimeoutError) as exc:
                self._disconnected(exc)
            with contextlib.suppress(*_ERRORS, redis.exceptions.RedisError):
                await _close_pubsub(pubsub)
            raise_if_cancelling()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _disconnected(self, exc: BaseException) -> None:
        if self._connected:
            self.stats.disconnects += 1
            log.warning(
                "Redis connection lost: closing every charge point link",
                extra={"url": redact_url(self.options.url), "error": type(exc).__name__},
            )
        self._connected = False
        self._links.lose_all()
        # Answers to this node's probes came over the lost pub/sub connection: they will not.
        for waiter in self._probes.values():
            if not waiter.done():
                waiter.set_exception(TransportUnavailable("Redis connection lost"))

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        if channel == self._owners_channel:
            token, _, epoch = data.decode().rpartition(" ")
            with contextlib.suppress(ValueError):
                self._links.owner_changed(token, int(epoch))
            return
        if channel == self._probe_channel:
            probe_id, _, answer = data.decode(errors="replace").partition(" ")
            waiter = self._probes.get(probe_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(answer.encode())
            return
        try:
            envelope = orjson.loads(data)
            charge_point_id = str(envelope["cp"])
            epoch = str(envelope["epoch"])
            frame = str(envelope["frame"]).encode()
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.stats.stale_dropped += 1
            return
        if channel == self._reply_channel:
            link = self._links.live(charge_point_id, epoch)
            if link is None:
                self.stats.stale_dropped += 1
            else:
                link.deliver(frame)
        elif channel == self._command_channel:
            if envelope.get("probe"):
                reply = str(envelope.get("reply") or "")
                ping = bool(envelope.get("ping", True))
                self._on_probe(reply, str(envelope["probe"]), charge_point_id, epoch, ping)
            else:
                self._on_command(envelope, charge_point_id, epoch, frame)

    def _on_probe(
        self, reply: str, probe_id: str, charge_point_id: str, epoch: str, ping: bool
    ) -> None:
        async def respond(verdict: bytes) -> None:
            redis_client = self._redis
            if reply and redis_client is not None:
                await redis_client.publish(reply, f"{probe_id} ".encode() + verdict)

        self._answer_probe(charge_point_id, epoch, respond, ping)

    def _on_command(
        self, envelope: dict[str, Any], charge_point_id: str, epoch: str, frame: bytes
    ) -> None:
        reply = str(envelope.get("reply") or "")
        command_id = str(envelope.get("cmd_id") or "")
        self._take_command(frame, reply, charge_point_id, epoch, command_id)

    def _respond(
        self, reply: str, status: CommandStatus, frame: bytes, fields: Mapping[str, str]
    ) -> None:
        """Push the outcome envelope `{"status", "frame", "cp", "epoch", "msg_id", "action",
        "cmd_id", "node"}` onto the reply list."""
        redis_client = self._redis
        if not reply or redis_client is None:
            return
        envelope = orjson.dumps(
            {
                "status": status.value,
                "frame": frame.decode(),
                "cp": fields.get(H_CHARGE_POINT, ""),
                "epoch": fields.get(H_EPOCH, ""),
                "msg_id": fields.get(H_MESSAGE_ID, ""),
                "action": fields.get(H_ACTION, ""),
                "cmd_id": fields.get(H_COMMAND_ID, ""),
                "node": self.node_id,
            }
        )
        self._push(reply, envelope)

    def _push(self, reply: str, data: bytes) -> None:
        """Put an answer on the asker's list (expiring after 60 s), in the background."""
        redis_client = self._redis
        if not reply or redis_client is None:
            return

        async def push() -> None:
            pipe = redis_client.pipeline(transaction=True)
            pipe.lpush(reply, data)
            pipe.expire(reply, 60)
            with contextlib.suppress(*_ERRORS, redis.exceptions.RedisError):
                await pipe.execute()

        self._in_background(push())

    # -- liveness -----------------------------------------------------------------------------

    async def _refresh_node(self, limit: float) -> None:
        assert self._liveness is not None
        async with asyncio.timeout(limit):
            await self._liveness.set(
                self._node_key, self._node_value(), px=int(self.options.node_ttl * 1000)
            )

    async def _heartbeat_failed(self, exc: Exception) -> None:
        """A failed refresh means Redis is away (also when it hangs without closing the
        connection): links are lost and the listener reconnects."""
        self._disconnected(exc)
        if self._listener is not None:
            # Make the listener reconnect: its connection may be hanging.
            # stop, not await: a close() cancelling this heartbeat meanwhile must end it, not
            # be taken for the listener's cancellation.
            await stop([self._listener])
            raise_if_cancelling()
            self._listener = asyncio.create_task(self._listen_loop())
