"""One charge point connection: its socket, Session, backend links, sender, timers and close.

A `Connection` is built by admission once the upgrade is done and driven by the relay. Its
timers do not run on their own: the process timer (`Runtime.tick`) calls `tick` about once a
second, which expires pending calls, closes an idle socket and sends the keep-alive pings. The
gateway pings from that one timer rather than with aiohttp's per-socket heartbeat: a socket
the gateway closed itself could re-arm aiohttp's heartbeat through the peer's close reply and
stay referenced for 1.5 ping intervals (aiohttp 3.14), and one timer per process is cheaper
than one per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from time import monotonic
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ocpp_gateway import _core
from ocpp_gateway._core import OcppVersionName
from ocpp_gateway.calls import (
    CallAborted,
    CallAnswer,
    CallLink,
    CallRefused,
    CallTimedOut,
    prepare_call,
)
from ocpp_gateway.reasons import CloseReason
from ocpp_gateway.registry import Registry
from ocpp_gateway.routing import ConnectionInfo
from ocpp_gateway.security.outbound import BoundedSender
from ocpp_gateway.transports import Link
from ocpp_gateway.transports.base import as_waking

if TYPE_CHECKING:
    from ocpp_gateway.capture import CaptureStream
    from ocpp_gateway.fanout.side import SideLink
    from ocpp_gateway.fanout.tap import NatsTap
    from ocpp_gateway.runtime import Runtime

__all__ = [
    "ADMIN_LINK",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_TRY_AGAIN",
    "Connection",
]

log = logging.getLogger("ocpp_gateway.connection")

CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
# Close code of the charge point socket by close reason, when the relay ends (others: 1001).
_CLOSE_CODES: dict[CloseReason | None, int] = {
    "upstream_lost": CLOSE_TRY_AGAIN,
    "internal_error": CLOSE_INTERNAL_ERROR,
}
# The name under `Connection.links` of the gateway's own link (`calls.CallLink`): calls the
# gateway makes itself (`Connection.call`) put their UniqueId in `call_origin` with this name,
# so that the relay hands the charge point's answer to that link, never to a backend. No
# transport can have this name.
ADMIN_LINK = "\x00admin"


class Connection:
    """The state of one charge point connection.

    Args:
        runtime: the process it belongs to.
        registry: the process's connections, which it leaves when it closes and ends.
        request: the upgrade request (its transport carries the socket).
        ws: the prepared WebSocket of the charge point.
        info: who the charge point is (given to plugins).
        link: the open link to the default backend.

    Attributes:
        charge_point_id, version, ws, session, info, registry: as given (session built for
            `version`).
        links: open backend links by transport name ("default" first).
        call_origin: UniqueId of a pending backend CALL -> the transport that sent it (only when
            several backends may call: `Runtime.track_origins`).
        close_reason: why the connection ends, once known (a connections_closed_total reason):
            the first one given to `end` (or `close`).
        last_seen: `time.monotonic()` of the last frame received from the charge point.
        sender: the bounded sender to the charge point.
        connected_at: wall-clock time (`time.time()`) of the upgrade.
        started: `time.monotonic()` of the upgrade.
        capture: its capture stream while capture is on (the relay feeds it every frame).
        sides: its links to the second backends (`fanout.SideLink`), empty without any.
        candidates: those of them whose backend is a candidate (given the primary's answers).
        taps: the observers on a broker that get its conversation (`fanout.tap.NatsTap`).
        primary: the name of its primary backend, with second backends ("" without).
        primary_pump: the task of the primary link's pump, with second backends.
        gate: its `CallLink` when the primary's calls queue with the gateway's (controllers).
        cutover: after a cutover of this charge point, the name of the former primary (the
            charge point may still use its 1.6 transaction ids); None before.
    """

    __slots__ = (
        "__weakref__",
        "_closing",
        "_ping_probe",
        "_ping_sent",
        "_pong_waiter",
        "_request",
        "_runtime",
        "call_origin",
        "candidates",
        "capture",
        "charge_point_id",
        "close_reason",
        "connected_at",
        "cutover",
        "gate",
        "info",
        "last_seen",
        "links",
        "primary",
        "primary_pump",
        "readers",
        "registry",
        "rejections",
        "sender",
        "session",
        "sides",
        "started",
        "taps",
        "version",
        "ws",
    )

    def __init__(
        self,
        runtime: Runtime,
        registry: Registry[Connection],
        request: web.Request,
        ws: web.WebSocketResponse,
        info: ConnectionInfo,
        link: Link,
    ) -> None:
        self._runtime = runtime
        self.registry = registry
        self._request = request
        self.charge_point_id = info.charge_point_id
        self.version: OcppVersionName = info.version
        self.ws = ws
        self.info = info
        self.session: _core.Session = runtime.new_session(info.version)
        self.links: dict[str, Link] = {"default": link}
        self.readers: list[asyncio.Task[None]] = []
        self.call_origin: dict[str, str] = {}
        self.capture: CaptureStream | None = None  # set while its frames are captured
        self.sides: tuple[SideLink, ...] = ()
        self.candidates: tuple[SideLink, ...] = ()
        self.taps: tuple[NatsTap, ...] = ()
        self.primary = ""
        self.primary_pump: asyncio.Task[None] | None = None
        self.cutover: str | None = None
        self.gate: CallLink | None = None
        self.rejections = 0  # frames of either side refused by validation (the console)
        self.close_reason: CloseReason | None = None
        self.last_seen = self.started = monotonic()
        self.connected_at = time.time()
        sec = runtime.config.security
        self.sender = BoundedSender(
            ws,
            request.transport,
            sec.max_outbound_queue_bytes,
            sec.slow_reader_grace,
            self._slow_reader,
        )
        self._closing: asyncio.Future[None] | None = None  # a close started by a timer
        self._ping_sent: float | None = None  # time of an unanswered keep-alive ping
        self._pong_waiter: asyncio.Future[None] | None = None
        self._ping_probe: asyncio.Future[bool] | None = None  # one takeover ping for newcomers

    def _slow_reader(self) -> None:
        self.end("slow_reader")

    def end(self, reason: CloseReason) -> CloseReason:
        """Say why the connection ends: the first reason given is the one counted and logged
        (a close that follows a lost backend stays "upstream_lost").

        Args:
            reason: a connections_closed_total reason.

        Returns:
            The reason that holds.
        """
        if self.close_reason is None:
            self.close_reason = reason
        return self.close_reason

    # -- timers ----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """The connection's timers, run by the process timer.

        - pending calls older than call_timeout are forgotten (counted, origins dropped);
        - a socket silent for idle_timeout is closed (1001);
        - a socket silent for ping_interval is pinged; one that sends nothing (no pong, no
          frame) for half an interval after that is dead: its transport is aborted.

        Args:
            now: `time.monotonic()`.
        """
        runtime = self._runtime
        metrics = runtime.metrics
        for direction, unique_id, action in self.session.expire(now):
            metrics.pending_timed_out.labels(direction, metrics.action_label(action)).inc()
            if direction == "csms_to_cp":
                if self.call_origin:
                    self.call_origin.pop(unique_id, None)
                if self.gate is not None:
                    self.gate.primary_answered(unique_id)  # its turn is over
        sec = runtime.config.security
        silent = now - self.last_seen
        if sec.idle_timeout > 0 and silent > sec.idle_timeout:
            self.close_soon(CLOSE_GOING_AWAY, "idle timeout", "idle_timeout")
            return
        interval = sec.ping_interval
        if interval <= 0 or self.ws.closed:
            return
        sent = self._ping_sent
        if sent is not None and self.last_seen < sent:
            if now - sent >= interval / 2:
                self._dead()
            return
        if silent >= interval:
            self._ping_sent = now
            _fire(self.ws.ping())

    def _dead(self) -> None:
        """No pong and no frame to a keep-alive ping: abort the socket (no close handshake)."""
        self.end("idle_timeout")
        transport = self._request.transport
        if transport is not None:
            transport.abort()

    def pong(self) -> None:
        """A pong arrived (the relay calls this)."""
        self._ping_sent = None
        waiter = self._pong_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def answers_ping(self) -> Awaitable[bool]:
        """Ping for the takeover policy; every newcomer asking while it is out shares it.

        Returns:
            An awaitable: True when the charge point answered within takeover_ping_timeout.
        """
        probe = self._ping_probe
        if probe is None or probe.done():
            probe = self._ping_probe = asyncio.ensure_future(self._ping())
        return asyncio.shield(probe)

    async def _ping(self) -> bool:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pong_waiter = waiter
        try:
            await self.ws.ping(b"takeover")
            await asyncio.wait_for(waiter, self._runtime.config.security.takeover_ping_timeout)
        except (TimeoutError, ConnectionError, RuntimeError):
            return False
        finally:
            self._pong_waiter = None
        return True

    # -- the gateway's own calls -----------------------------------------------------------

    # The deadline covers the wait in the queue too, so it is the call's own (not the caller's).
    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        timeout: float,  # noqa: ASYNC109
        origin: str = "admin",
    ) -> CallAnswer:
        """Send a CALL of the gateway's own to the charge point and wait for its answer.

        The call is checked strictly (`calls.prepare_call`) and judged by the Session like a
        backend's call; it waits its turn behind the other gateway calls to this charge point
        (one in flight, OCPP-J §4.1.1; at most `calls.CALL_QUEUE_LIMIT` waiting), and its
        answer goes to the `ADMIN_LINK` link, never to a backend.

        Args:
            action: the action.
            payload: the request payload.
            timeout: seconds for the whole call, the wait for its turn included.
            origin: who asks: "admin" (the admin API) or a controller backend's name (logged
                and captured as the call's backend).

        Returns:
            The charge point's answer.

        Raises:
            calls.CallRefused: invalid; nothing was sent.
            calls.CallQueueFull: too many calls wait for this charge point; nothing was sent.
            calls.CallTimedOut: no answer within `timeout` (`unique_id` None: never sent).
            calls.CallAborted: the charge point disconnected.
        """
        unique_id, frame = prepare_call(
            self._runtime.schemas[self.version], self.version, action, payload
        )
        link = self.call_link()
        sent = False
        try:
            async with asyncio.timeout(timeout):
                await link.turn(unique_id)
                verdict = self.session.from_csms(frame, monotonic())
                if not verdict.forward:
                    raise CallRefused(verdict.error_code or "", verdict.error_detail or "")
                waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
                link.waiting[unique_id] = waiter
                # The relay pops this entry when the answer comes and hands the answer to the
                # link; the timer drops it with the pending call when that expires.
                self.call_origin[unique_id] = ADMIN_LINK
                log.info(
                    "gateway call",
                    extra={
                        "charge_point_id": self.charge_point_id,
                        "action": action,
                        "id": unique_id,
                        "origin": origin,
                    },
                )
                sent = True
                if self.capture is not None:
                    reason = "admin_call" if origin == "admin" else "controller_call"
                    self.capture.from_gateway("csms_to_cp", frame, action, reason, origin)
                try:
                    await self.sender.send(frame)
                except (ConnectionError, RuntimeError) as exc:
                    raise CallAborted(unique_id) from exc
                return CallAnswer(unique_id, await waiter)
        except TimeoutError as exc:
            raise CallTimedOut(unique_id if sent else None) from exc
        finally:
            link.done(unique_id)

    def call_link(self, with_primary: bool = False) -> CallLink:
        """The connection's `CallLink` (made on first use): the queue of the calls to the
        charge point and the waiters of the gateway's own.

        Args:
            with_primary: the primary's calls take tickets in the queue too (made so for a
                charge point with controllers, before any call).

        Returns:
            The link (also under `links[ADMIN_LINK]`; `gate` when the primary's calls queue).
        """
        found = self.links.get(ADMIN_LINK)
        if isinstance(found, CallLink):
            return found
        deliver = self.sender.send if with_primary else None
        link = CallLink(self.version, deliver=deliver)
        self.links[ADMIN_LINK] = link
        if with_primary:
            self.gate = link
        return link

    # -- close -----------------------------------------------------------------------------

    async def close(self, code: int, message: str, reason: CloseReason) -> None:
        """Close the charge point socket, giving up the identity at once; the relay then ends
        and cleans up.

        Args:
            code: WebSocket close code.
            message: close reason text sent to the charge point.
            reason: the connections_closed_total reason (see `end`).
        """
        self.end(reason)
        self.registry.displace(self)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=message.encode())

    def close_soon(self, code: int, message: str, reason: CloseReason) -> None:
        """Start a close without waiting for the close handshake (timers, backends).

        Args:
            code: WebSocket close code.
            message: close reason text sent to the charge point.
            reason: the connections_closed_total reason (see `end`).
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.close(code, message, reason))

    async def finish(self) -> None:
        """Release everything once the charge point pump has ended: backend pumps and links,
        the socket (closed with the code of the close reason), the registry entry, metrics and
        the plugins' on_disconnect."""
        runtime = self._runtime
        self.registry.forget(self)
        for link in self.links.values():
            waking = as_waking(link)
            if waking is not None:
                waking.set_wake(None)  # a parked pump goes like the running ones below
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        self.readers.clear()
        for link in self.links.values():
            await link.close()
        if not self.ws.closed:
            code = _CLOSE_CODES.get(self.close_reason, CLOSE_GOING_AWAY)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.close(code=code)
        reason = self.end("charge_point_closed")
        runtime.metrics.connections_closed.labels(reason).inc()
        from_cp, to_cp = self.session.frames()
        log.info(
            "charge point disconnected",
            extra={
                "charge_point_id": self.charge_point_id,
                "remote": self.info.remote,
                "subprotocol": self.version,
                "reason": reason,
                "close_code": self.ws.close_code,
                "duration": round(monotonic() - self.started, 3),
                "frames_from_charge_point": from_cp,
                "frames_to_charge_point": to_cp,
            },
        )
        self.registry.progress()
        if runtime.chain is not None:
            runtime.chain.on_disconnect(self.info)


def _fire(coro: Any) -> None:
    """Run a write in the background; a socket that broke meanwhile is the relay's to notice."""
    asyncio.ensure_future(coro).add_done_callback(_ignore_result)


def _ignore_result(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()
