"""An observer on NATS JetStream: the conversation of each charge point it serves, both ways.

Unlike a WebSocket observer (a connection per charge point that receives the charge point's
CALLs), a broker observer receives every frame the relay forwards, each direction, published
to a durable JetStream stream with headers saying which way it went and who sent it:

- subject `ocpp.observe.<backend>.<charge point token>` (the token as in docs/brokers.md:
  `[A-Za-z0-9_-]` kept, other bytes `=HH`), stream `OCPP_OBSERVE_<backend token>` created when
  missing (file storage, limits retention);
- headers `Ocpp-Direction` (`cp_to_csms` or `csms_to_cp`), `Ocpp-From` (`charge_point`, the
  primary's name), `Ocpp-To` (the primary's name, `gateway` for the answers to the gateway's
  and controllers' calls, or `charge_point`), `Ocpp-Charge-Point`, `Ocpp-Version`,
  `Ocpp-Message-Type`, `Ocpp-Unique-Id`, `Ocpp-Action` (of a result: its call's).

One publisher task per observer and process awaits each PubAck in order; frames wait in one
bounded queue per observer (`queue_frames`), the oldest dropped when it is full (counted,
logged rate-bounded), so that an unreachable broker never slows a charge point; nats-py
reconnects by itself and what waited is published then.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections import deque
from time import monotonic
from typing import Any

from ocpp_gateway.aio import raise_if_cancelling, stop
from ocpp_gateway.config import BackendConfig
from ocpp_gateway.logs import Throttle, redact_url
from ocpp_gateway.metrics import Metrics
from ocpp_gateway.transports.broker.contract import identity_token

__all__ = ["NatsTap", "stream_name", "subject_of"]

log = logging.getLogger("ocpp_gateway.fanout.tap")

_FIRST_PAUSE = 0.1
_MAX_PAUSE = 5.0
_PUBLISH_TIMEOUT = 5.0


def stream_name(backend: str) -> str:
    """Returns: the JetStream stream of an observer backend."""
    return "OCPP_OBSERVE_" + identity_token(backend)


def subject_of(backend: str, charge_point_id: str) -> str:
    """Returns: the subject of one charge point's frames for an observer backend."""
    return f"ocpp.observe.{identity_token(backend)}.{identity_token(charge_point_id)}"


class NatsTap:
    """One observer backend on NATS.

    Args:
        name: its name under `[backends]`.
        config: its settings (type "nats", role "observer").
        metrics: the process's metrics.
    """

    def __init__(self, name: str, config: BackendConfig, metrics: Metrics) -> None:
        self.name = name
        self.config = config
        self.role = config.role
        self.queue: deque[tuple[str, bytes, dict[str, str]]] = deque()
        self.state = "connecting"
        self.dropped = 0
        self.task: asyncio.Task[None] | None = None
        self._limit = config.queue_frames
        self._waiter: asyncio.Future[None] | None = None
        self._client: Any = None
        self.sent = metrics.backend_frames.labels(name, config.role, "to_backend")
        self._dropped = metrics.backend_dropped.labels(name, config.role)
        self._reconnects = metrics.backend_reconnects.labels(name, config.role)
        self._log = Throttle(10.0, 5)
        self._publisher = secrets.token_hex(8)
        self._sequence = itertools.count()

    def describe(self) -> dict[str, Any]:
        """Returns: the observer as the admin API lists it."""
        return {
            "name": self.name,
            "role": self.role,
            "state": self.state,
            "queued": len(self.queue),
            "dropped": self.dropped,
            "reconnects": None,
        }

    def offer(
        self,
        charge_point_id: str,
        version: str,
        direction: str,
        sender: str,
        receiver: str,
        frame: bytes,
        message_type: int,
        unique_id: str | None,
        action: str | None,
    ) -> None:
        """Queue one frame of a charge point's conversation; never waits.

        Args:
            charge_point_id: the charge point.
            version: its OCPP version.
            direction: "cp_to_csms" or "csms_to_cp".
            sender: who sent it ("charge_point", the primary's name).
            receiver: who it went to.
            frame: its bytes.
            message_type: its MessageTypeId.
            unique_id: its UniqueId.
            action: its action (of a result: its call's).
        """
        if self.task is None:
            self.task = asyncio.ensure_future(self.run())
            self.task.add_done_callback(self._ended)
        queue = self.queue
        if len(queue) >= self._limit:
            queue.popleft()
            self.dropped += 1
            self._dropped.inc()
            suppressed = self._log.allow(monotonic())
            if suppressed is not None:
                log.warning(
                    "broker observer queue full, oldest frame dropped",
                    extra={"backend": self.name, "queued": len(queue), "suppressed": suppressed},
                )
        headers = {
            "Ocpp-Direction": direction,
            "Ocpp-From": sender,
            "Ocpp-To": receiver,
            "Ocpp-Charge-Point": charge_point_id,
            "Ocpp-Version": version,
            "Ocpp-Message-Type": str(message_type),
            "Ocpp-Unique-Id": unique_id or "",
            "Ocpp-Action": action or "",
            # Published again after a lost PubAck, a frame is stored once (JetStream's
            # duplicate window).
            "Nats-Msg-Id": f"{self._publisher}-{next(self._sequence)}",
        }
        queue.append((subject_of(self.name, charge_point_id), frame, headers))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def run(self) -> None:
        """Connect, make the stream, publish the queue in order; until cancelled."""
        import nats
        import nats.errors
        import nats.js.errors
        from nats.js import api

        config = self.config
        pause = _FIRST_PAUSE
        while self._client is None:
            try:
                self._client = await nats.connect(
                    servers=[config.url or ""],
                    user=config.username,
                    password=config.password,
                    connect_timeout=config.connect_timeout,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    reconnected_cb=self._reconnected,
                    disconnected_cb=self._disconnected,
                    error_cb=self._error,
                )
            except (OSError, nats.errors.Error, TimeoutError) as exc:
                self._unreachable(exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
        self.state = "up"
        js = self._client.jetstream(timeout=_PUBLISH_TIMEOUT)
        stream = stream_name(self.name)
        subjects = [f"ocpp.observe.{identity_token(self.name)}.>"]
        queue = self.queue
        loop = asyncio.get_running_loop()
        made = False
        while True:
            if not queue:
                self._waiter = waiter = loop.create_future()
                await waiter
                continue
            try:
                if not made:
                    with contextlib.suppress(nats.js.errors.BadRequestError):
                        await js.add_stream(
                            api.StreamConfig(
                                name=stream,
                                subjects=subjects,
                                storage=api.StorageType.FILE,
                                retention=api.RetentionPolicy.LIMITS,
                            )
                        )
                    made = True
                subject, frame, headers = queue[0]
                await js.publish(subject, frame, headers=headers)
            except (OSError, nats.errors.Error, TimeoutError) as exc:
                self._unreachable(exc)
                raise_if_cancelling()  # nats-py's wait_for can lose a close()'s cancellation
                await asyncio.sleep(pause)  # the frame stays queued; nats-py reconnects
                pause = min(pause * 2, _MAX_PAUSE)
                continue
            pause = _FIRST_PAUSE
            self.sent.inc()
            if queue and queue[0][1] is frame:
                queue.popleft()

    def _ended(self, task: asyncio.Future[None]) -> None:
        """The publisher ended without being closed (an error it does not expect): say so and
        let the next frame start it again, so that the queue does not only drop from now on."""
        if task is self.task and not task.cancelled():
            error = task.exception()
            if error is not None:
                log.error(
                    "broker observer publisher failed; starting it again",
                    extra={"backend": self.name, "error": type(error).__name__},
                )
            self.task = None

    async def _reconnected(self) -> None:
        self.state = "up"
        self._reconnects.inc()

    async def _disconnected(self) -> None:
        self.state = "down"

    async def _error(self, exc: Exception) -> None:
        log.debug("broker observer client error", extra={"error": type(exc).__name__})

    def _unreachable(self, exc: BaseException) -> None:
        self.state = "down" if self._client is not None else "connecting"
        suppressed = self._log.allow(monotonic())
        if suppressed is not None:
            log.warning(
                "broker observer unreachable, trying again",
                extra={
                    "backend": self.name,
                    "url": redact_url(self.config.url or ""),
                    "error": type(exc).__name__,
                    "suppressed": suppressed,
                },
            )

    async def close(self) -> None:
        """Stop publishing and close the client; idempotent."""
        task, self.task = self.task, None
        await stop([task])
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
