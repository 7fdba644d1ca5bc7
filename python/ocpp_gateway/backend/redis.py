"""The backend API on Redis Streams.

A consumer group per service on both inbound streams (XREADGROUP, XACK; XAUTOCLAIM takes over
what a dead consumer held), answers over pub/sub, commands routed by the ownership hashes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
import redis.exceptions

from ocpp_gateway.aio import raise_if_cancelling, stop
from ocpp_gateway.backend.app import CommandResult, Delivery, Request
from ocpp_gateway.transports.broker import (
    H_ACTION,
    H_CHARGE_POINT,
    H_EPOCH,
    H_NODE,
    H_PROTOCOL,
    H_RECEIVED,
    H_REPLY,
    CommandStatus,
    identity_token,
)
from ocpp_gateway.transports.redis_streams import RedisStreamsOptions, connect

__all__ = ["RedisBroker"]

log = logging.getLogger("ocpp_gateway.backend.redis")

_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class _RedisDelivery:
    __slots__ = ("_broker", "_entry_id", "_fields", "_stream", "request")

    def __init__(
        self,
        broker: RedisBroker,
        stream: str,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        request: Request,
    ) -> None:
        self._broker = broker
        self._stream = stream
        self._entry_id = entry_id
        self._fields = fields
        self.request = request

    async def answer(self, frame: bytes) -> None:
        reply = self._fields.get(H_REPLY.encode())
        if not reply:
            return
        request = self.request
        envelope = orjson.dumps(
            {"cp": request.charge_point_id, "epoch": request.epoch, "frame": frame.decode()}
        )
        await self._broker.client.publish(reply, envelope)

    async def ack(self) -> None:
        await self._broker.client.xack(self._stream, self._broker.service, self._entry_id)

    async def retry_later(self) -> None:
        # Left pending: XAUTOCLAIM hands it out again once it has been idle for ack_wait.
        return None


class RedisBroker:
    """A backend's connection to the gateway's Redis layout.

    All instances of one service share its consumer group (`service`); each process is its
    own consumer. An entry a consumer took and did not acknowledge within `ack_wait` is claimed
    by another (XAUTOCLAIM), so a dead instance's work is redone elsewhere.

    Args:
        url: the Redis URL, or full `RedisStreamsOptions` (the key prefix must match the
            gateway's).
        service: the consumer group of this service ("csms", "billing", ...).
        ack_wait: seconds of idleness after which a taken entry is claimed by another consumer.
        batch: entries read per call.
    """

    def __init__(
        self,
        url: str | RedisStreamsOptions = "redis://127.0.0.1:6379/0",
        *,
        service: str = "csms",
        ack_wait: float = 30.0,
        batch: int = 64,
    ) -> None:
        self.options = url if isinstance(url, RedisStreamsOptions) else RedisStreamsOptions(url=url)
        self.service = service
        self.ack_wait = ack_wait
        self.batch = batch
        self.consumer = f"{service}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._streams = (self.options.key("in", "tx"), self.options.key("in", "gen"))
        self._redis: aioredis.Redis | None = None

    @property
    def client(self) -> aioredis.Redis:
        """The client.

        Raises:
            RuntimeError: before `start`.
        """
        if self._redis is None:
            raise RuntimeError("RedisBroker not started")
        return self._redis

    async def start(self) -> None:
        """Connect and create the consumer groups when missing (reading from the start of the
        streams, so a new service sees what is already there)."""
        if self._redis is not None:
            return
        client = connect(self.options)
        for stream in self._streams:
            try:
                await client.xgroup_create(stream, self.service, id="0", mkstream=True)
            except redis.exceptions.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._redis = client

    async def consume(self, deliver: Callable[[Delivery], Awaitable[None]]) -> None:
        """Read new entries of both streams and reclaim stale ones, until cancelled.

        Args:
            deliver: awaited once per entry.
        """
        tasks = [
            asyncio.create_task(self._read(deliver)),
            asyncio.create_task(self._reclaim(deliver)),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            await stop(tasks)

    async def _read(self, deliver: Callable[[Delivery], Awaitable[None]]) -> None:
        client = self.client
        streams: dict[Any, Any] = {stream: ">" for stream in self._streams}
        while True:
            try:
                batches: Any = await client.xreadgroup(
                    self.service, self.consumer, streams, count=self.batch, block=1000
                )
            except _ERRORS as exc:
                log.warning("read failed", extra={"error": type(exc).__name__})
                raise_if_cancelling()
                await asyncio.sleep(0.5)
                continue
            for stream, entries in batches or ():
                name = stream.decode() if isinstance(stream, bytes) else str(stream)
                for entry_id, fields in entries:
                    await self._deliver_entry(deliver, name, entry_id, fields, 1)

    async def _reclaim(self, deliver: Callable[[Delivery], Awaitable[None]]) -> None:
        client = self.client
        idle_ms = int(self.ack_wait * 1000)
        while True:
            await asyncio.sleep(max(0.1, self.ack_wait / 2))
            for stream in self._streams:
                start: Any = "0-0"
                try:
                    while True:
                        result = await client.xautoclaim(
                            stream, self.service, self.consumer, idle_ms, start, count=100
                        )
                        start, entries = result[0], result[1]
                        for entry_id, fields in entries:
                            if fields:  # None: deleted meanwhile
                                await self._deliver_entry(deliver, stream, entry_id, fields, 2)
                        if start in (b"0-0", "0-0"):
                            break
                except _ERRORS as exc:
                    log.warning("reclaim failed", extra={"error": type(exc).__name__})
                    raise_if_cancelling()

    async def _deliver_entry(
        self,
        deliver: Callable[[Delivery], Awaitable[None]],
        stream: str,
        entry_id: bytes,
        fields: dict[bytes, bytes],
        delivery_count: int,
    ) -> None:
        request = self._request(fields, delivery_count)
        if request is None:
            # Not from a gateway: acknowledge it so that it is never handed out again.
            with contextlib.suppress(*_ERRORS):
                await self.client.xack(stream, self.service, entry_id)
            return
        await deliver(_RedisDelivery(self, stream, entry_id, fields, request))

    @staticmethod
    def _request(fields: dict[bytes, bytes], delivery_count: int) -> Request | None:
        def text(name: str) -> str:
            return fields.get(name.encode(), b"").decode()

        try:
            frame = fields[b"frame"]
            message = orjson.loads(frame)
            payload = message[3] if message[0] == 2 else message[2]
            return Request(
                charge_point_id=text(H_CHARGE_POINT),
                ocpp_version=text(H_PROTOCOL),
                message_type=int(message[0]),
                unique_id=str(message[1]),
                action=text(H_ACTION) or str(message[2]),
                payload=payload if isinstance(payload, dict) else {},
                frame=frame,
                node=text(H_NODE),
                epoch=int(text(H_EPOCH) or 0),
                received_at=text(H_RECEIVED),
                delivery_count=delivery_count,
            )
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError, ValueError):
            log.warning("entry without the gateway's fields or frame")
            return None

    async def command(
        self, charge_point_id: str, frame: bytes, unique_id: str, action: str, wait: float
    ) -> CommandResult:
        """Route a CALL to the node holding the charge point and wait for its outcome.

        Offline comes at once: no ownership hash, its node's liveness key gone, or nobody
        subscribed to the node's command channel.

        Args:
            charge_point_id: the identity.
            frame: the CALL.
            unique_id: its UniqueId.
            action: its action.
            wait: seconds to wait.

        Returns:
            The outcome.
        """
        try:
            async with asyncio.timeout(wait):
                return await self._command(charge_point_id, frame, unique_id, action, wait)
        except TimeoutError:
            return CommandResult(CommandStatus.TIMEOUT, b"", unique_id)

    async def _command(
        self, charge_point_id: str, frame: bytes, unique_id: str, action: str, wait: float
    ) -> CommandResult:
        client = self.client
        options = self.options
        offline = CommandResult(CommandStatus.OFFLINE, b"", unique_id)
        owner: Any = await client.hgetall(options.key("owner", identity_token(charge_point_id)))
        node = owner.get(b"node", b"").decode()
        if not node or not await client.exists(options.key("node", node)):
            return offline
        reply = options.key("reply", uuid.uuid4().hex)
        envelope = orjson.dumps(
            {
                "cp": charge_point_id,
                "epoch": owner.get(b"epoch", b"0").decode(),
                "frame": frame.decode(),
                "reply": reply,
                "cmd_id": unique_id,
                H_ACTION: action,
            }
        )
        receivers = await client.publish(options.key("gw", node, "cmd"), envelope)
        if not receivers:
            return offline
        answer = await client.blpop([reply], timeout=wait)
        if answer is None:
            return CommandResult(CommandStatus.TIMEOUT, b"", unique_id)
        try:
            result = orjson.loads(answer[1])
            status = CommandStatus(result["status"])
            body = str(result.get("frame") or "").encode()
        except (orjson.JSONDecodeError, KeyError, ValueError):
            return CommandResult(CommandStatus.TIMEOUT, b"", unique_id)
        return CommandResult(status, body, unique_id)

    async def close(self) -> None:
        """Close the client; idempotent."""
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()
