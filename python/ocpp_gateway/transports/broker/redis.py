"""Redis Streams: the broker client of the Redis transport, its options and its scripts.

Charge point frames go into two streams read by consumer groups and are handed over once XADD
returned (and, with `wait_replicas`, WAIT confirmed that many replicas within
`publish_timeout`); the XADDs of all charge points go out together on a connection of their
own (`XaddWriter`), each in RESP with what is fixed per connection encoded once per link;
answers, commands and probes travel over pub/sub; the ownership of each
charge point is a hash claimed atomically with an epoch; node liveness is a key with a TTL.
The layout (keys, channels, fields, envelopes) is the wire contract of docs/brokers.md,
"Redis Streams". When Redis cannot be reached every link is lost, `open` refuses, and the
client reconnects in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.client import PubSub

from ocpp_gateway.aio import raise_if_cancelling, stop
from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.logs import redact_url
from ocpp_gateway.transports.base import Holder
from ocpp_gateway.transports.broker.contract import (
    DEFAULT_TRANSACTION_ACTIONS,
    H_ACTION,
    H_CHARGE_POINT,
    H_DEDUP,
    H_EPOCH,
    H_MESSAGE_ID,
    H_MESSAGE_TYPE,
    H_NODE,
    H_PROTOCOL,
    H_RECEIVED,
    H_REPLY,
    CommandEnvelope,
    CommandStatus,
    decode_owner_change,
    decode_probe_reply,
    decode_redis_answer,
    decode_redis_command,
    default_node_id,
    encode_node_value,
    encode_probe_reply,
    encode_redis_outcome,
    encode_redis_probe,
    identity_token,
    received_timestamp,
)
from ocpp_gateway.transports.broker.link import BrokerLink
from ocpp_gateway.transports.broker.protocol import holder_state
from ocpp_gateway.transports.broker.transport import BrokerTransport, Inbox, url_errors

__all__ = [
    "CLAIM_SCRIPT",
    "H_DEDUP",
    "RELEASE_SCRIPT",
    "RedisClient",
    "RedisFrameFields",
    "RedisStreamsOptions",
    "RedisStreamsTransport",
    "XaddWriter",
    "connect",
]

log = logging.getLogger("ocpp_gateway.transports.broker.redis")

_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
_FAILURES = (*_ERRORS, redis.exceptions.RedisError, TimeoutError)

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
            server); the XADDs written together share one WAIT (it counts every write before
            it on the connection).
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


def _bulk(value: bytes) -> bytes:
    """One RESP bulk string: `$<length>`, CRLF, the bytes, CRLF."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _bulks(*values: str | bytes) -> bytes:
    """RESP bulk strings of `values` (text as UTF-8), one after another."""
    return b"".join(_bulk(v.encode() if isinstance(v, str) else v) for v in values)


class RedisFrameFields:
    """The XADD of one link's frames, in RESP as redis-py would send it: the stream fields of
    `protocol.frame_metadata` (the frame first, then the metadata), where what is fixed per
    connection (charge point, version, node, epoch, reply channel, the dedup key's prefix) is
    encoded once and a frame adds its bytes, type, UniqueId, action, receive time and number.

    Args:
        link: the link (its `epoch` set: it is claimed).
        node_id: this node's id.
        reply: where backends answer (`Ocpp-Reply`).
    """

    __slots__ = ("_dedup", "_head", "_middle", "_reply")

    def __init__(self, link: BrokerLink, node_id: str, reply: bytes) -> None:
        epoch = str(link.epoch)
        self._head = _bulks(H_CHARGE_POINT, link.charge_point_id, H_PROTOCOL, link.version)
        self._middle = _bulks(H_NODE, node_id, H_EPOCH, epoch)
        self._reply = _bulks(H_REPLY, reply, H_DEDUP)
        self._dedup = f"{node_id}:{epoch}:"

    def command(
        self,
        xadd: tuple[str, ...],
        frame: bytes,
        message_type: int,
        unique_id: str,
        action: str,
        received: str,
        number: int,
    ) -> bytes:
        """Args:
            xadd: the command up to its fields (`XADD`, the stream, trimming, `*`).
            frame: the frame.
            message_type: 2 or 6.
            unique_id: its UniqueId.
            action: its action.
            received: `Ocpp-Rx-Ts`.
            number: the frame's number on the connection (the dedup key's last part).

        Returns:
            The whole command in RESP (`*<count>` then each bulk string).
        """
        return b"".join(
            (
                b"*%d\r\n" % (len(xadd) + _FIELD_COUNT),
                _bulks(*xadd),
                _FRAME,
                _bulk(frame),
                self._head,
                _TYPE,
                _bulk(str(message_type).encode()),
                _MESSAGE_ID,
                _bulk(unique_id.encode()),
                _ACTION,
                _bulk(action.encode()),
                self._middle,
                _RECEIVED,
                _bulk(received.encode()),
                self._reply,
                _bulk(f"{self._dedup}{number}".encode()),
            )
        )


_FIELD_COUNT = 22  # 11 names and their values
_FRAME = _bulks("frame")
_TYPE = _bulks(H_MESSAGE_TYPE)
_MESSAGE_ID = _bulks(H_MESSAGE_ID)
_ACTION = _bulks(H_ACTION)
_RECEIVED = _bulks(H_RECEIVED)


class XaddWriter:
    """The XADDs of a node's charge points on one connection of their own, written together:
    what the links queue in one loop iteration goes out in one write, and each frame's
    future is done once Redis answered its XADD (the entry id: the frame is in the stream),
    or fails with Redis's error for that entry, or with TransportUnavailable for every frame
    of a batch when the connection fails. One connection answers in order, so the replies
    are matched by position.

    With `wait_replicas`, each write ends with a WAIT (it counts the replicas that have every
    write of the connection so far): the batch's frames are done only once that many confirmed
    within `wait_ms`, else they fail.

    Args:
        client: the client whose pool lends the connection.
        wait_replicas: replicas that must confirm each batch (0: no WAIT).
        wait_ms: how long WAIT may wait, in milliseconds.
    """

    def __init__(self, client: aioredis.Redis, wait_replicas: int = 0, wait_ms: int = 0) -> None:
        self._client = client
        self._wait = _bulks("WAIT", str(wait_replicas), str(wait_ms)) if wait_replicas else b""
        self._wait_replicas = wait_replicas
        self._queue: list[tuple[bytes, asyncio.Future[object]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._connection: Any = None

    def add(self, command: bytes) -> asyncio.Future[object]:
        """Queue one XADD (RESP).

        Args:
            command: the command (`RedisFrameFields.command`).

        Returns:
            Its future: the entry id once Redis took it.
        """
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._queue.append((command, done))
        if self._writer is None:
            # Runs from the next loop iteration: what this one queues goes in its first write.
            self._writer = asyncio.ensure_future(self._write())
        return done

    async def _write(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                for attempt in (1, 2):
                    try:
                        await self._send(batch)
                        break
                    except _FAILURES as exc:
                        await self._drop_connection()
                        # Once more on a new connection (the one held may have died while
                        # idle): what was not answered yet, with the same dedup keys.
                        batch = [(command, done) for command, done in batch if not done.done()]
                        if attempt == 2 or not isinstance(exc, _ERRORS):
                            failure = TransportUnavailable(f"Redis did not take the frame: {exc!r}")
                            for _, done in batch:
                                done.set_exception(failure)
        finally:
            self._writer = None

    async def _send(self, batch: list[tuple[bytes, asyncio.Future[object]]]) -> None:
        connection = self._connection
        if connection is None:
            pool: Any = self._client.connection_pool
            connection = self._connection = await pool.get_connection()
        commands = [command for command, _ in batch]
        if self._wait:
            commands.append(b"*3\r\n" + self._wait)
        await connection.send_packed_command(commands, False)
        replies: list[tuple[asyncio.Future[object], object, BaseException | None]] = []
        for _, done in batch:
            try:
                replies.append((done, await connection.read_response(), None))
            except redis.exceptions.ResponseError as exc:
                replies.append((done, None, exc))
        if self._wait and int(await connection.read_response()) < self._wait_replicas:
            unconfirmed = TransportUnavailable("replicas did not confirm the frame")
            replies = [(done, None, unconfirmed) for done, _, _ in replies]
        for done, reply, error in replies:
            if done.done():
                continue
            if error is None:
                done.set_result(reply)
            else:
                done.set_exception(error)

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(*_FAILURES):
                await connection.disconnect()
            pool: Any = self._client.connection_pool
            with contextlib.suppress(*_FAILURES):
                await pool.release(connection)

    async def reset(self) -> None:
        """Stop writing and give the connection back (Redis is away, or the client closes):
        what waits fails with TransportUnavailable."""
        await stop([self._writer])
        self._writer = None
        queue, self._queue = self._queue, []
        for _, done in queue:
            if not done.done():
                done.set_exception(TransportUnavailable("Redis connection lost"))
        await self._drop_connection()


class RedisClient:
    """The Redis I/O of a `BrokerTransport` (`transport.BrokerClient`): the layout of
    docs/brokers.md read and written with redis-py. One pub/sub connection (a listener task,
    reconnecting with a short back-off) receives answers, commands, probes and ownership
    announcements; the node key's refresh has a connection of its own.

    Args:
        options: the settings.
    """

    broker = "Redis"
    errors: tuple[type[Exception], ...] = (*_ERRORS, redis.exceptions.RedisError)
    dedup_field = H_DEDUP
    body_field = "frame"

    def __init__(self, options: RedisStreamsOptions) -> None:
        self.options = options
        self.node_id = node = options.node_id
        self._tx_stream = options.key("in", "tx")
        self._gen_stream = options.key("in", "gen")
        # XADD up to the fields: the stream, the approximate MAXLEN when set, an id of "*".
        trim = ("MAXLEN", "~", str(options.max_len)) if options.max_len > 0 else ()
        self._tx_xadd = ("XADD", self._tx_stream, *trim, "*")
        self._gen_xadd = ("XADD", self._gen_stream, *trim, "*")
        self._reply_channel = options.key("gw", node, "res").encode()
        self.reply_address: str | bytes = self._reply_channel
        self._command_channel = options.key("gw", node, "cmd").encode()
        self._probe_channel = options.key("gw", node, "probe").encode()
        self._probes: dict[str, asyncio.Future[bytes]] = {}  # probe id -> the holder's answer
        self._owners_channel = options.key("owners").encode()
        self._node_key = options.key("node", node)
        self._redis: aioredis.Redis | None = None
        # The node key's refresh has a connection of its own: a pool busy with a storm's
        # claims must not starve it (a refresh that cannot run means Redis is away).
        self._liveness: aioredis.Redis | None = None
        self._claim: Any = None
        self._xadds: XaddWriter | None = None  # the frames' XADDs, on a connection of their own
        self._release: Any = None
        self._started: asyncio.Event | None = None
        self._listener: asyncio.Task[None] | None = None
        self._inbox: Inbox | None = None
        self._connected = False

    def ready(self) -> bool:
        """Returns: True while Redis answers and this node listens to its channels."""
        return self._connected

    # -- life cycle ---------------------------------------------------------------------------

    async def subscribe(self, inbox: Inbox) -> None:
        """Start listening (in the background, reconnecting while Redis is away) and wait up to
        `connect_timeout` for the first connection.

        Args:
            inbox: where what arrives goes.

        Raises:
            TransportUnavailable: Redis could not be reached in time.
        """
        if self._started is None:
            self._inbox = inbox
            self._started = asyncio.Event()
            self._redis = connect(self.options)
            options = self.options
            self._xadds = XaddWriter(
                self._redis, options.wait_replicas, int(options.publish_timeout * 1000)
            )
            self._liveness = connect(self.options, pool_size=1)
            self._claim = self._redis.register_script(CLAIM_SCRIPT)
            self._release = self._redis.register_script(RELEASE_SCRIPT)
            self._listener = asyncio.create_task(self._listen_loop())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._started.wait(), self.options.connect_timeout)
        if not self._connected:
            raise TransportUnavailable("cannot reach Redis")

    async def close(self) -> None:
        """Stop the listener, leave the node key, close the clients."""
        await stop([self._listener])
        if self._xadds is not None:
            await self._xadds.reset()
        redis_client = self._redis
        if redis_client is not None:
            if self._connected:
                with contextlib.suppress(*_ERRORS):
                    await asyncio.wait_for(redis_client.delete(self._node_key), 2.0)
            await redis_client.aclose()
        if self._liveness is not None:
            await self._liveness.aclose()
        self._connected = False

    async def refresh_node(self, limit: float) -> None:
        """Write the node key within `limit`. A failure means Redis is away (also when it
        hangs without closing the connection): links are lost and the listener reconnects."""
        assert self._liveness is not None
        try:
            async with asyncio.timeout(limit):
                await self._liveness.set(
                    self._node_key,
                    encode_node_value(self.node_id),
                    px=int(self.options.node_ttl * 1000),
                )
        except _FAILURES as exc:
            self._disconnected(exc)
            if self._xadds is not None:
                # Its connection may be hanging too: the frames waiting on it fail now.
                await self._xadds.reset()
            if self._listener is not None:
                # Make the listener reconnect: its connection may be hanging.
                # stop, not await: a close() cancelling this heartbeat meanwhile must end it,
                # not be taken for the listener's cancellation.
                await stop([self._listener])
                raise_if_cancelling()
                self._listener = asyncio.create_task(self._listen_loop())

    # -- ownership ----------------------------------------------------------------------------

    async def claim(self, token: str, version: str) -> int:
        """The claim script: a new epoch from `<p>:epoch`, announced on `<p>:owners`."""
        options = self.options
        epoch = await self._claim(
            keys=[options.key("owner", token), options.key("epoch")],
            args=[self.node_id, version, received_timestamp(), self._owners_channel, token],
        )
        return int(epoch)

    async def read_owner(self, token: str) -> tuple[str, str] | None:
        """Returns: (node, epoch) of the ownership hash, None when there is none."""
        assert self._redis is not None
        entry = await self._redis.hmget(self.options.key("owner", token), "node", "epoch")
        holder, epoch = (_text(value) for value in entry)
        return (holder, epoch) if holder and epoch else None

    async def ask_probe(
        self, node: str, charge_point_id: str, epoch: str, limit: float, ping: bool
    ) -> Holder:
        """A probe envelope on the holder's command channel, no subscriber there meaning it is
        gone; the answer comes back on this node's probe channel (the pub/sub listener), so no
        pool connection is held while the holder pings."""
        redis_client = self._redis
        assert redis_client is not None
        probe_id = uuid.uuid4().hex
        answer = self._probes[probe_id] = asyncio.get_running_loop().create_future()
        asked = encode_redis_probe(
            probe_id, charge_point_id, epoch, ping, self._probe_channel.decode()
        )
        try:
            async with asyncio.timeout(self.options.publish_timeout):
                listening = await redis_client.publish(self.options.key("gw", node, "cmd"), asked)
            if not listening:
                return holder_state(False, None)
            try:
                return holder_state(True, await asyncio.wait_for(answer, limit))
            except TimeoutError:
                return holder_state(True, None)
        finally:
            self._probes.pop(probe_id, None)

    async def drop_owner(self, token: str, epoch: int) -> None:
        """The release script: delete the hash if its epoch is still `epoch`."""
        await self._release(keys=[self.options.key("owner", token)], args=[epoch])

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
        """XADD one charge point frame to its stream (then WAIT for replicas when configured).
        The fields (`protocol.frame_metadata`, the frame first) come from `RedisFrameFields`:
        what is fixed per connection encoded once, in `link.wire`.

        Args:
            link: the charge point's link.
            tx: it goes to the transaction stream.
            message_type: 2 (CALL) or 6 (SEND).
            unique_id: its UniqueId.
            action: its action.
            frame: the bytes, unchanged.

        Raises:
            TransportUnavailable: Redis did not take it within `publish_timeout`.
        """
        redis_client = self._redis
        if redis_client is None:
            raise TransportUnavailable("Redis unavailable")
        wire = link.wire
        if wire is None:
            wire = link.wire = RedisFrameFields(link, self.node_id, self._reply_channel)
        command = wire.command(
            self._tx_xadd if tx else self._gen_xadd,
            frame,
            message_type,
            unique_id,
            action,
            received_timestamp(),
            link.published,
        )
        options = self.options
        try:
            async with asyncio.timeout(options.publish_timeout):
                assert self._xadds is not None
                await self._xadds.add(command)
        except _FAILURES as exc:
            raise TransportUnavailable(
                f"Redis did not take the frame: {type(exc).__name__}"
            ) from exc

    async def respond(
        self, reply: str, status: CommandStatus, frame: bytes, fields: Mapping[str, str]
    ) -> None:
        """Push the outcome envelope (`contract.encode_redis_outcome`) onto the reply list,
        expiring after 60 s."""
        await self._push(reply, encode_redis_outcome(status, frame, fields, self.node_id))

    async def _push(self, reply: str, data: bytes) -> None:
        redis_client = self._redis
        if not reply or redis_client is None:
            return
        pipe = redis_client.pipeline(transaction=True)
        pipe.lpush(reply, data)
        pipe.expire(reply, 60)
        with contextlib.suppress(*_ERRORS, redis.exceptions.RedisError):
            await pipe.execute()

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
                        self._node_key,
                        encode_node_value(self.node_id),
                        px=int(self.options.node_ttl * 1000),
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
            except _FAILURES as exc:
                self._disconnected(exc)
            with contextlib.suppress(*_ERRORS, redis.exceptions.RedisError):
                await _close_pubsub(pubsub)
            raise_if_cancelling()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _disconnected(self, exc: BaseException) -> None:
        first, self._connected = self._connected, False
        if first:
            log.warning(
                "Redis connection lost",
                extra={"url": redact_url(self.options.url), "error": type(exc).__name__},
            )
        if self._inbox is not None:
            self._inbox.lost(first)
        # Answers to this node's probes came over the lost pub/sub connection: they will not.
        for waiter in self._probes.values():
            if not waiter.done():
                waiter.set_exception(TransportUnavailable("Redis connection lost"))

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        inbox = self._inbox
        assert inbox is not None
        if channel == self._owners_channel:
            change = decode_owner_change(data)
            if change is not None:
                inbox.owner_changed(*change)
        elif channel == self._probe_channel:
            probe_id, answer = decode_probe_reply(data)
            waiter = self._probes.get(probe_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(answer)
        elif channel == self._reply_channel:
            answered = decode_redis_answer(data)
            if answered is None:
                inbox.stale()
            else:
                inbox.answer(*answered)
        elif channel == self._command_channel:
            asked = decode_redis_command(data)
            if asked is None:
                inbox.stale()
            elif isinstance(asked, CommandEnvelope):
                inbox.command(
                    asked.frame,
                    asked.reply,
                    asked.charge_point_id,
                    asked.epoch,
                    asked.command_id,
                    None,
                )
            else:
                probe_id, reply = asked.probe_id, asked.reply

                async def respond(verdict: bytes) -> None:
                    redis_client = self._redis
                    if reply and redis_client is not None:
                        await redis_client.publish(reply, encode_probe_reply(probe_id, verdict))

                inbox.probe(asked, respond)


class RedisStreamsTransport(BrokerTransport):
    """The Redis Streams transport: a `BrokerTransport` over a `RedisClient`.

    Args:
        name: the transport's configured name.
        options: the settings.
    """

    options: RedisStreamsOptions

    def __init__(self, name: str, options: RedisStreamsOptions) -> None:
        super().__init__(name, options, RedisClient(options))

    @classmethod
    def from_options(
        cls, name: str, options: RedisStreamsOptions, max_message_bytes: int = 0
    ) -> Self:
        """Build the transport from its typed settings (the registry's entry point)."""
        return cls(name, options)
