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
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.client import PubSub

from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.logs import redact_url
from ocpp_gateway.transports.base import Holder
from ocpp_gateway.transports.broker import (
    DEFAULT_TRANSACTION_ACTIONS,
    H_ACTION,
    H_CHARGE_POINT,
    H_EPOCH,
    H_MESSAGE_ID,
    H_MESSAGE_TYPE,
    H_NODE,
    H_PROTOCOL,
    H_RECEIVED,
    H_REPLY,
    PROBE_ANSWERS,
    VERSION_TOKENS,
    BrokerLink,
    BrokerStats,
    Command,
    CommandStatus,
    LinkTable,
    Prober,
    answer_probe,
    assume_alive,
    default_node_id,
    identity_token,
    is_transaction,
    parse_command,
    received_timestamp,
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
        from urllib.parse import urlsplit

        errors = []
        if self.pool_size < 4:
            errors.append(f"{key}.pool_size: at least 4, got {self.pool_size}")
        for url in self.url.split(","):
            parts = urlsplit(url.strip())
            if parts.scheme not in ("redis", "rediss", "unix") or not (
                parts.hostname or parts.scheme == "unix"
            ):
                expected = " or ".join(f"{scheme}://" for scheme in ("redis", "rediss", "unix"))
                errors.append(
                    f"{key}.url: expected {expected}host[:port]..., got "
                    f"{parts.scheme or 'no scheme'}"
                )
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


def _text(value: bytes | str | None) -> str:
    """A reply value as text ("" for a missing one)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class RedisStreamsTransport:
    """The Redis Streams transport (see the module docstring).

    Hooks for the server: `ready()` (False while Redis is unreachable: `/readyz` answers 503),
    `stats` (counters for the metrics), `connected_links` (links open now).

    Args:
        name: the transport's configured name.
        options: the settings.
    """

    def __init__(self, name: str, options: RedisStreamsOptions) -> None:
        self.name = name
        self.options = options
        self.node_id = options.node_id
        self.stats = BrokerStats()
        self.command_timeout = options.command_timeout
        self.command_queue = options.command_queue
        self._tx_actions = frozenset(options.transaction_actions)
        self._links = LinkTable(self.stats)
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
        self._connected = False
        self._closed = False
        self._started: asyncio.Event | None = None
        self._listener: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        # Pings this node's charge points when another node asks (set by the server).
        self.prober: Prober = assume_alive

    @classmethod
    def from_options(
        cls, name: str, options: RedisStreamsOptions, max_message_bytes: int = 0
    ) -> RedisStreamsTransport:
        """Build the transport from its typed settings (the registry's entry point)."""
        return cls(name, options)

    # -- hooks for the server -----------------------------------------------------------------

    def ready(self) -> bool:
        """Returns: True while Redis answers and this node listens to its channels."""
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

    async def close(self) -> None:
        """Lose every link, leave the node key, stop the background tasks; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._links.lose_all("closed")
        for task in (self._listener, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        redis_client = self._redis
        if redis_client is not None:
            if self._connected:
                with contextlib.suppress(*_ERRORS):
                    await asyncio.wait_for(redis_client.delete(self._node_key), 2.0)
            await redis_client.aclose()
        if self._liveness is not None:
            await self._liveness.aclose()
        self._connected = False
        for task in list(self._background):
            task.cancel()

    # -- links --------------------------------------------------------------------------------

    async def open(self, charge_point_id: str, versions: tuple[str, ...]) -> BrokerLink:
        """Claim the charge point (a new epoch) and open its link.

        Args:
            charge_point_id: the identity.
            versions: the versions the charge point offered, preferred first; a backend on a
                broker is not asked, so the link takes the first.

        Returns:
            The link; its `epoch` comes from the claim.

        Raises:
            TransportUnavailable: Redis is unreachable, or a newer claim came in meanwhile.
        """
        if not self._connected:
            await self.start()
        subprotocol = next((v for v in versions if v in VERSION_TOKENS), None)
        if subprotocol is None:
            raise TransportUnavailable(f"no key token for {', '.join(versions)}")
        token = identity_token(charge_point_id)
        link = BrokerLink(self, charge_point_id, token, subprotocol)
        self._links.add(link)
        options = self.options
        try:
            epoch = int(
                await asyncio.wait_for(
                    self._claim(
                        keys=[options.key("owner", token), options.key("epoch")],
                        args=[
                            self.node_id,
                            subprotocol,
                            received_timestamp(),
                            self._owners_channel,
                            token,
                        ],
                    ),
                    options.publish_timeout,
                )
            )
        except (*_ERRORS, redis.exceptions.RedisError, TimeoutError) as exc:
            self._links.forget(link)
            raise TransportUnavailable(f"cannot claim ownership: {type(exc).__name__}") from exc
        link.epoch = epoch
        if link.seen_revision > epoch or link.ended:
            self._links.forget(link)
            raise TransportUnavailable("another node took the charge point meanwhile")
        return link

    async def held_elsewhere(self, charge_point_id: str, probe: bool, limit: float) -> Holder:
        """Whether another live node holds this identity (`base.SharedOwnership`): its
        ownership hash names another node, and that node is alive (its liveness key exists;
        with `probe`, it answers a probe on its command channel after pinging its charge point:
        no subscriber there means it is gone).

        Args:
            charge_point_id: the newcomer's identity.
            probe: ask the holding node for a ping.
            limit: seconds to wait for its answer.

        Returns:
            "free", "live" or "unresponsive".

        Raises:
            TransportUnavailable: Redis cannot be asked.
        """
        redis_client = self._redis
        if not self.ready() or redis_client is None:
            raise TransportUnavailable("Redis unavailable")
        options = self.options
        token = identity_token(charge_point_id)
        try:
            async with asyncio.timeout(options.publish_timeout):
                entry = await redis_client.hmget(options.key("owner", token), "node", "epoch")
                holder, epoch = (_text(value) for value in entry)
                if not holder or not epoch or holder == self.node_id:
                    return "free"
                if not probe:
                    if not await redis_client.exists(options.key("node", holder)):
                        return "free"  # the holder's node is dead; its sockets went with it
                    return "live"
            # The answer comes back on this node's probe channel (the pub/sub listener): no
            # pool connection is held while the holder pings.
            probe_id = uuid.uuid4().hex
            answer = self._probes[probe_id] = asyncio.get_running_loop().create_future()
            asked = orjson.dumps(
                {
                    "probe": probe_id,
                    "cp": charge_point_id,
                    "epoch": epoch,
                    "frame": "",
                    "reply": self._probe_channel.decode(),
                }
            )
            try:
                async with asyncio.timeout(options.publish_timeout):
                    listening = await redis_client.publish(options.key("gw", holder, "cmd"), asked)
                if not listening:
                    return "free"  # nobody listens for that node: it is gone, with its sockets
                try:
                    return PROBE_ANSWERS.get(await asyncio.wait_for(answer, limit), "unresponsive")
                except TimeoutError:
                    return "unresponsive"
            finally:
                self._probes.pop(probe_id, None)
        except (*_ERRORS, redis.exceptions.RedisError, TimeoutError) as exc:
            raise TransportUnavailable(f"cannot read ownership: {type(exc).__name__}") from exc

    async def release(self, link: BrokerLink) -> None:
        """Forget a closed link; delete its ownership hash unless a newer claim replaced it.

        Args:
            link: the closed link.
        """
        self._links.forget(link)
        if not link.epoch or not self._connected or self._release is None:
            return
        with contextlib.suppress(*_ERRORS, redis.exceptions.RedisError, TimeoutError):
            await asyncio.wait_for(
                self._release(keys=[self.options.key("owner", link.token)], args=[link.epoch]),
                2.0,
            )

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
        epoch = str(link.epoch)
        fields: dict[Any, Any] = {
            "frame": frame,
            H_CHARGE_POINT: link.charge_point_id,
            H_PROTOCOL: link.version,
            H_MESSAGE_TYPE: str(message_type),
            H_MESSAGE_ID: unique_id,
            H_ACTION: action,
            H_NODE: self.node_id,
            H_EPOCH: epoch,
            H_RECEIVED: received_timestamp(),
            H_REPLY: self._reply_channel,
            H_DEDUP: f"{self.node_id}:{epoch}:{link.published}",
        }
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
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (*_ERRORS, redis.exceptions.RedisError, TimeoutError) as exc:
                self._disconnected(exc)
            with contextlib.suppress(*_ERRORS, redis.exceptions.RedisError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
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
                self._on_probe(reply, str(envelope["probe"]), charge_point_id, epoch)
            else:
                self._on_command(envelope, charge_point_id, epoch, frame)

    def _on_probe(self, reply: str, probe_id: str, charge_point_id: str, epoch: str) -> None:
        async def answer() -> None:
            verdict = await answer_probe(self._links, self.prober, charge_point_id, epoch)
            redis_client = self._redis
            if reply and redis_client is not None:
                with contextlib.suppress(*_ERRORS, redis.exceptions.RedisError):
                    await redis_client.publish(reply, f"{probe_id} ".encode() + verdict)

        # In the background: a ping takes up to takeover_ping_timeout.
        task = asyncio.ensure_future(answer())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_command(
        self, envelope: dict[str, Any], charge_point_id: str, epoch: str, frame: bytes
    ) -> None:
        reply = str(envelope.get("reply") or "")
        command_id = str(envelope.get("cmd_id") or "")
        parsed = parse_command(frame)
        if parsed is None:
            self.stats.commands[CommandStatus.REJECTED.value] += 1
            self._respond(reply, CommandStatus.REJECTED, b"", charge_point_id, epoch, "", "", "")
            return
        unique_id, action = parsed
        link = self._links.live(charge_point_id, epoch)
        if link is None:
            self.stats.commands[CommandStatus.OFFLINE.value] += 1
            self._respond(
                reply,
                CommandStatus.OFFLINE,
                b"",
                charge_point_id,
                epoch,
                unique_id,
                action,
                command_id,
            )
            return
        link.offer_command(Command(unique_id, action, frame, reply, command_id))

    def answer_command(
        self, link: BrokerLink, command: Command, status: CommandStatus, frame: bytes
    ) -> None:
        """Push a command's outcome onto its reply list (in the background).

        Args:
            link: the charge point's link.
            command: the command.
            status: its outcome.
            frame: the charge point's (or the gateway's rejecting) frame, or empty.
        """
        self._respond(
            command.reply,
            status,
            frame,
            link.charge_point_id,
            str(link.epoch),
            command.unique_id,
            command.action,
            command.command_id,
        )

    def _respond(
        self,
        reply: str,
        status: CommandStatus,
        frame: bytes,
        charge_point_id: str,
        epoch: str,
        unique_id: str,
        action: str,
        command_id: str,
    ) -> None:
        redis_client = self._redis
        if not reply or redis_client is None:
            return
        envelope = orjson.dumps(
            {
                "status": status.value,
                "frame": frame.decode(),
                "cp": charge_point_id,
                "epoch": epoch,
                "msg_id": unique_id,
                "action": action,
                "cmd_id": command_id,
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

        task = asyncio.ensure_future(push())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- liveness -----------------------------------------------------------------------------

    def _node_value(self) -> bytes:
        return orjson.dumps({"node": self.node_id, "ts": time.time()})

    async def _heartbeat_loop(self) -> None:
        """Refresh the node key; a failed refresh means Redis is away (also when it hangs
        without closing the connection)."""
        interval = max(0.2, self.options.node_ttl / 3)
        while True:
            await asyncio.sleep(interval)
            if not self._connected or self._liveness is None:
                continue
            try:
                async with asyncio.timeout(interval):
                    await self._liveness.set(
                        self._node_key, self._node_value(), px=int(self.options.node_ttl * 1000)
                    )
            except (*_ERRORS, redis.exceptions.RedisError, TimeoutError) as exc:
                self._disconnected(exc)
                if self._listener is not None:
                    # Make the listener reconnect: its connection may be hanging.
                    self._listener.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._listener
                    self._listener = asyncio.create_task(self._listen_loop())
