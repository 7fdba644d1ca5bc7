"""The broker-independent part of the backend API: requests, handlers, answers, commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ocpp_gateway.transports.broker.contract import CommandStatus

__all__ = ["BackendApp", "Broker", "CallError", "CommandResult", "Delivery", "Handler", "Request"]

log = logging.getLogger("ocpp_gateway.backend")


class CallError(Exception):
    """Raised by a handler to answer the charge point with a CALLERROR.

    Args:
        code: an OCPP-J error code of the call's version ("NotImplemented", "InternalError",
            "PropertyConstraintViolation", ...).
        description: a short text for the charge point.
        details: the error details object.
    """

    def __init__(
        self, code: str, description: str = "", details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {description}" if description else code)
        self.code = code
        self.description = description
        self.details = dict(details or {})


@dataclass(frozen=True, slots=True)
class Request:
    """One frame a charge point sent, as a backend receives it.

    Attributes:
        charge_point_id: the identity.
        ocpp_version: "ocpp1.6", "ocpp2.0.1" or "ocpp2.1".
        message_type: 2 (CALL) or 6 (2.1 SEND, never answered).
        unique_id: the frame's UniqueId.
        action: its action.
        payload: its payload, parsed.
        frame: the frame's bytes, exactly as the charge point sent them.
        node: the gateway node holding the charge point's socket.
        epoch: the connection epoch (the ownership revision).
        received_at: when the gateway received it (RFC 3339).
        delivery_count: 1 on first delivery, more after redeliveries.
    """

    charge_point_id: str
    ocpp_version: str
    message_type: int
    unique_id: str
    action: str
    payload: dict[str, Any]
    frame: bytes
    node: str
    epoch: int
    received_at: str
    delivery_count: int = 1


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How a command to a charge point ended.

    Attributes:
        status: ok, callerror, offline, busy, timeout or rejected (`CommandStatus`).
        frame: the charge point's answer (ok, callerror) or the gateway's CALLERROR
            (rejected); empty otherwise.
        unique_id: the command's UniqueId.
    """

    status: CommandStatus
    frame: bytes = b""
    unique_id: str = ""

    @property
    def payload(self) -> dict[str, Any] | None:
        """The CALLRESULT's payload when the status is ok, else None."""
        if self.status is not CommandStatus.OK or not self.frame:
            return None
        message = orjson.loads(self.frame)
        payload: dict[str, Any] = message[2]
        return payload

    @property
    def error_code(self) -> str | None:
        """The CALLERROR's code (callerror, rejected), else None."""
        if not self.frame or self.status not in (CommandStatus.CALLERROR, CommandStatus.REJECTED):
            return None
        code: str = orjson.loads(self.frame)[2]
        return code


class Delivery(Protocol):
    """One message taken from the broker, not yet acknowledged."""

    request: Request

    async def answer(self, frame: bytes) -> None:
        """Publish the answer frame to the message's reply address."""
        ...

    async def ack(self) -> None:
        """Acknowledge the message: it will not be delivered again."""
        ...

    async def retry_later(self) -> None:
        """Give the message back for redelivery (after a short delay)."""
        ...


class Broker(Protocol):
    """What `BackendApp` needs from a broker (NATS, Redis Streams)."""

    async def start(self) -> None:
        """Connect and create the layout when missing."""
        ...

    async def consume(self, deliver: Callable[[Delivery], Awaitable[None]]) -> None:
        """Take messages and pass each to `deliver` until cancelled."""
        ...

    async def command(
        self, charge_point_id: str, frame: bytes, unique_id: str, action: str, wait: float
    ) -> CommandResult:
        """Send a CALL to a charge point and wait for its outcome."""
        ...

    async def close(self) -> None:
        """Disconnect; idempotent."""
        ...


Handler = Callable[[Request], Awaitable[Mapping[str, Any] | None]]


class BackendApp:
    """A backend service: handlers per action, commands to charge points.

    Args:
        broker: where the gateway's frames are (`NatsBroker`, ...).
        concurrency: messages handled at once.
        command_timeout: default seconds `call` waits for an outcome.
    """

    def __init__(self, broker: Broker, *, concurrency: int = 64, command_timeout: float = 35.0):
        self.broker = broker
        self.command_timeout = command_timeout
        self._handlers: dict[str, Handler] = {}
        self._fallback: Handler | None = None
        self._limit = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False

    def on(self, action: str) -> Callable[[Handler], Handler]:
        """Register the handler of one action (decorator).

        A handler takes the `Request` and returns the response payload (a dict), or raises
        `CallError`. For a SEND (2.1) its return value is ignored. Any other exception leaves
        the message unacknowledged, to be delivered again.

        Args:
            action: the action name, e.g. "StartTransaction".

        Returns:
            The decorator.
        """

        def register(handler: Handler) -> Handler:
            self._handlers[action] = handler
            return handler

        return register

    def fallback(self, handler: Handler) -> Handler:
        """Register the handler of every action without its own (decorator).

        Without one, such CALLs are answered with a NotImplemented CALLERROR.

        Args:
            handler: the handler.

        Returns:
            The handler.
        """
        self._fallback = handler
        return handler

    async def start(self) -> None:
        """Connect the broker (also done by `run` and `call`)."""
        if not self._started:
            await self.broker.start()
            self._started = True

    async def run(self) -> None:
        """Consume and handle messages until cancelled (or `stop`)."""
        await self.start()
        try:
            await self.broker.consume(self._deliver)
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Wait for the handlers running now, then close the broker."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.broker.close()

    async def call(
        self,
        charge_point_id: str,
        action: str,
        payload: Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the bound also travels to the node
        unique_id: str | None = None,
    ) -> CommandResult:
        """Send a CALL to a charge point, on whichever gateway node holds it.

        Args:
            charge_point_id: the identity.
            action: e.g. "Reset".
            payload: the request payload.
            timeout: seconds to wait for an outcome (default `command_timeout`).
            unique_id: the CALL's UniqueId (default: a new UUID).

        Returns:
            The outcome: `status` ok / callerror with the charge point's frame, offline (at
            once when no live node holds it), busy, timeout (outcome unknown) or rejected (the
            gateway's validation refused it; its CALLERROR is the frame).
        """
        await self.start()
        unique_id = unique_id or str(uuid.uuid4())
        frame = orjson.dumps([2, unique_id, action, dict(payload)])
        return await self.broker.command(
            charge_point_id,
            frame,
            unique_id,
            action,
            self.command_timeout if timeout is None else timeout,
        )

    async def _deliver(self, delivery: Delivery) -> None:
        await self._limit.acquire()
        task = asyncio.create_task(self._handle(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._limit.release()

    async def _handle(self, delivery: Delivery) -> None:
        request = delivery.request
        handler = self._handlers.get(request.action, self._fallback)
        try:
            if handler is None:
                raise CallError("NotImplemented", f"{request.action} is not handled here")
            result = await handler(request)
            frame = (
                orjson.dumps([3, request.unique_id, dict(result or {})])
                if request.message_type == 2
                else None
            )
        except CallError as exc:
            frame = orjson.dumps([4, request.unique_id, exc.code, exc.description, exc.details])
        except Exception:
            log.exception(
                "handler failed; the message will be delivered again",
                extra={"action": request.action, "charge_point_id": request.charge_point_id},
            )
            with contextlib.suppress(Exception):
                await delivery.retry_later()
            return
        try:
            if frame is not None and request.message_type == 2:
                await delivery.answer(frame)
            await delivery.ack()
        except Exception:
            # Not acknowledged: the broker delivers it again and the handler replays its answer.
            log.exception("answer or ack failed", extra={"action": request.action})
