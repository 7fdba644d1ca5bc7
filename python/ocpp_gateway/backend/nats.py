"""The backend API on NATS JetStream.

Durable pull consumers on both inbound streams, answers on core NATS, commands routed by the
ownership bucket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from ocpp_gateway.aio import raise_if_cancelling, stop
from ocpp_gateway.backend.app import CommandResult, Delivery, Request
from ocpp_gateway.transports.broker import (
    H_ACTION,
    H_CHARGE_POINT,
    H_EPOCH,
    H_MESSAGE_ID,
    H_MESSAGE_TYPE,
    H_NODE,
    H_PROTOCOL,
    H_RECEIVED,
    H_REPLY,
    H_STATUS,
    CommandStatus,
    identity_token,
)
from ocpp_gateway.transports.nats import NatsOptions, connect, ensure_layout

__all__ = ["NatsBroker"]

log = logging.getLogger("ocpp_gateway.backend.nats")

# JetStream API failures worth asking again: no answer in time, nobody answering (JetStream
# not ready yet), the connection away for a moment.
_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.ServiceUnavailableError,
    nats.errors.ConnectionReconnectingError,
    TimeoutError,
    OSError,
)


class _NatsDelivery:
    __slots__ = ("_broker", "_msg", "request")

    def __init__(self, broker: NatsBroker, msg: Msg, request: Request) -> None:
        self._broker = broker
        self._msg = msg
        self.request = request

    async def answer(self, frame: bytes) -> None:
        headers = self._msg.headers or {}
        reply = headers.get(H_REPLY)
        if not reply:
            return
        request = self.request
        nc = self._broker.client
        await nc.publish(
            reply,
            frame,
            headers={
                H_CHARGE_POINT: request.charge_point_id,
                H_EPOCH: str(request.epoch),
                H_MESSAGE_ID: request.unique_id,
                H_ACTION: request.action,
                H_MESSAGE_TYPE: "3" if frame[1:2] == b"3" else "4",
            },
        )

    async def ack(self) -> None:
        await self._msg.ack()

    async def retry_later(self) -> None:
        await self._msg.nak(delay=self._broker.retry_delay)


class NatsBroker:
    """A backend's connection to the gateway's NATS layout.

    All instances of one service share its durable consumers (`service`), so the messages are
    spread over them and an unacknowledged message goes to another instance after `ack_wait`.

    Args:
        url: the NATS server(s), or full `NatsOptions` (the layout names must match the
            gateway's).
        service: the durable consumer name of this service ("csms", "billing", ...).
        ack_wait: seconds before an unacknowledged message is delivered again.
        batch: messages fetched per pull.
        retry_delay: seconds before a message whose handler failed comes again.
    """

    def __init__(
        self,
        url: str | NatsOptions = "nats://127.0.0.1:4222",
        *,
        service: str = "csms",
        ack_wait: float = 30.0,
        batch: int = 64,
        retry_delay: float = 1.0,
    ) -> None:
        self.options = url if isinstance(url, NatsOptions) else NatsOptions(url=url)
        self.service = service
        self.ack_wait = ack_wait
        self.batch = batch
        self.retry_delay = retry_delay
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._owners: KeyValue | None = None
        self._nodes: KeyValue | None = None

    @property
    def client(self) -> NatsClient:
        """The connected client.

        Raises:
            RuntimeError: before `start`.
        """
        if self._nc is None:
            raise RuntimeError("NatsBroker not started")
        return self._nc

    async def start(self) -> None:
        """Connect and create the layout when missing.

        Raises:
            TransportUnavailable: NATS cannot be reached.
        """
        if self._nc is not None:
            return
        nc = await connect(self.options, f"ocpp-backend {self.service}")
        js = nc.jetstream()
        self._owners, self._nodes = await ensure_layout(js, self.options)
        self._nc, self._js = nc, js

    async def consume(self, deliver: Callable[[Delivery], Awaitable[None]]) -> None:
        """Pull from both inbound streams and pass each message to `deliver`, until cancelled.

        Args:
            deliver: awaited once per message (it may start a task and return).
        """
        options = self.options
        pulls = [
            asyncio.create_task(self._pull(stream, kind, deliver))
            for stream, kind in ((options.tx_stream, "tx"), (options.gen_stream, "gen"))
        ]
        try:
            await asyncio.gather(*pulls)
        finally:
            await stop(pulls)

    async def _ensure_consumer(self, stream: str, kind: str) -> None:
        """Create the service's durable consumer on `stream` when missing. A JetStream that
        does not answer in time (a stalled, busy or restarting server) is asked again until it
        does: giving up would leave the service running without consuming anything, while its
        commands still work. Refusals (a consumer of that name with another configuration) are
        raised."""
        js = self._js
        assert js is not None
        while True:
            try:
                try:
                    await js.consumer_info(stream, self.service)
                except nats.js.errors.NotFoundError:
                    await js.add_consumer(
                        stream,
                        api.ConsumerConfig(
                            durable_name=self.service,
                            ack_policy=api.AckPolicy.EXPLICIT,
                            ack_wait=self.ack_wait,
                            max_deliver=-1,
                            max_ack_pending=max(1000, self.batch * 4),
                            deliver_policy=api.DeliverPolicy.ALL,
                            filter_subject=self.options.subject("in", kind, ">"),
                        ),
                    )
                return
            except _TRANSIENT as exc:
                log.warning(
                    "consumer set-up failed",
                    extra={"stream": stream, "error": type(exc).__name__},
                )
                raise_if_cancelling()
                await asyncio.sleep(0.5)

    async def _pull(
        self, stream: str, kind: str, deliver: Callable[[Delivery], Awaitable[None]]
    ) -> None:
        """Keep pull requests outstanding on the durable consumer and hand over each message as
        it arrives. (nats-py's `fetch` waits for a whole batch or its timeout: a lone message
        would wait up to that timeout, on a request/response path.)"""
        await self._ensure_consumer(stream, kind)
        nc = self.client
        loop = asyncio.get_running_loop()
        inbox = nc.new_inbox()
        arrived: asyncio.Queue[Msg] = asyncio.Queue()

        async def enqueue(msg: Msg) -> None:
            arrived.put_nowait(msg)

        sub = await nc.subscribe(inbox, cb=enqueue)
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{self.service}"
        expires = 5.0
        request = orjson.dumps({"batch": self.batch, "expires": int(expires * 1e9)})
        credit = 0
        asked = -expires
        try:
            while True:
                now = loop.time()
                # Ask for more when half the credit is used, and before the last ask expires.
                if credit <= self.batch // 2 or now - asked > expires * 0.8:
                    try:
                        await nc.publish(next_subject, request, reply=inbox)
                    except (nats.errors.Error, OSError) as exc:
                        log.warning("pull request failed", extra={"error": type(exc).__name__})
                        raise_if_cancelling()
                        await asyncio.sleep(0.5)
                        continue
                    credit = credit + self.batch if now - asked <= expires * 0.8 else self.batch
                    asked = now
                try:
                    msg = await asyncio.wait_for(arrived.get(), expires * 0.8)
                except TimeoutError:
                    raise_if_cancelling()
                    continue
                if msg.headers and msg.headers.get("Status"):
                    continue  # 404 no messages, 408 request expired, 100 heartbeat, 409 ...
                credit -= 1
                parsed = self._request(msg)
                if parsed is None:
                    with contextlib.suppress(nats.errors.Error, OSError):
                        await msg.term()  # not from a gateway: never deliver it again
                    continue
                await deliver(_NatsDelivery(self, msg, parsed))
        finally:
            with contextlib.suppress(nats.errors.Error, OSError):
                await sub.unsubscribe()

    @staticmethod
    def _request(msg: Msg) -> Request | None:
        headers = msg.headers or {}
        try:
            message = orjson.loads(msg.data)
            payload = message[3] if message[0] == 2 else message[2]
            return Request(
                charge_point_id=headers[H_CHARGE_POINT],
                ocpp_version=headers[H_PROTOCOL],
                message_type=int(message[0]),
                unique_id=str(message[1]),
                action=headers.get(H_ACTION) or str(message[2]),
                payload=payload if isinstance(payload, dict) else {},
                frame=msg.data,
                node=headers.get(H_NODE, ""),
                epoch=int(headers.get(H_EPOCH, "0") or 0),
                received_at=headers.get(H_RECEIVED, ""),
                delivery_count=msg.metadata.num_delivered,
            )
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError, ValueError):
            log.warning(
                "message without the gateway's headers or frame", extra={"subject": msg.subject}
            )
            return None

    async def command(
        self, charge_point_id: str, frame: bytes, unique_id: str, action: str, wait: float
    ) -> CommandResult:
        """Route a CALL to the node holding the charge point and wait for its outcome.

        Offline comes at once: no ownership entry, its node not alive, or nobody listening on
        the node's command subject.

        Args:
            charge_point_id: the identity.
            frame: the CALL.
            unique_id: its UniqueId.
            action: its action.
            wait: seconds to wait.

        Returns:
            The outcome.
        """
        owners, nodes, nc = self._owners, self._nodes, self._nc
        assert owners is not None and nodes is not None and nc is not None
        offline = CommandResult(CommandStatus.OFFLINE, b"", unique_id)
        try:
            entry = await owners.get(identity_token(charge_point_id))
            node = str(orjson.loads(entry.value or b"{}")["node"])
            await nodes.get(node)
        except nats.js.errors.KeyNotFoundError:  # also KeyDeletedError
            return offline
        except (KeyError, orjson.JSONDecodeError):
            return offline
        headers = {
            H_CHARGE_POINT: charge_point_id,
            H_EPOCH: str(entry.revision),
            H_MESSAGE_ID: unique_id,
            H_ACTION: action,
        }
        try:
            reply = await nc.request(
                self.options.subject("gw", node, "cmd"), frame, timeout=wait, headers=headers
            )
        except nats.errors.NoRespondersError:
            return offline
        except nats.errors.TimeoutError:
            return CommandResult(CommandStatus.TIMEOUT, b"", unique_id)
        status_text = (reply.headers or {}).get(H_STATUS, "")
        try:
            status = CommandStatus(status_text)
        except ValueError:
            status = CommandStatus.TIMEOUT
        return CommandResult(status, reply.data, unique_id)

    async def close(self) -> None:
        """Flush what was published (answers, acks) and close the connection; idempotent.
        Messages taken but not acknowledged are delivered again after `ack_wait`."""
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
                await asyncio.wait_for(nc.flush(), 5.0)
            await nc.close()
