"""The relay: a connection's two pumps, frame -> Session verdict -> routing decision -> link.

`run` is the charge point pump: it reads the charge point socket, has the connection's Session
judge each frame, asks the plugin chain about valid CALLs, and sends the original bytes to the
backend link (or the core's answer back to the charge point). `backend_pump` does the same for
one backend link, towards the charge point. Both end the connection when their side goes away:
a lost backend closes the charge point socket (1013) so that the charge point queues its
transaction messages itself; the gateway never answers on a backend's behalf.

Times given to the Session are `time.monotonic()`: uvloop's `loop.time()` advances in whole
milliseconds, which would round every sub-millisecond round trip down to 0.

The loops keep what they use per frame in locals (bound methods, the sender) and hold no frame
or verdict across the wait for the next frame, so an idle connection keeps nothing alive. A
backend link that can wake its reader (`WakingLink`: the broker links) gets no waiting task at
all: its pump runs while the link has frames, then parks on the link (`set_wake`) and ends, and
the link starts it again when the next frame (or its end) comes. A link that routes frames by
what they are (`FramedLink`: the broker links) gets the Verdict's facts with each frame
(`send_frame`), and says why it ended (`end_reason`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from time import monotonic
from typing import TYPE_CHECKING, Literal, cast

import orjson
from aiohttp import WSMsgType, web

from ocpp_gateway import _core
from ocpp_gateway._core import DirectionName
from ocpp_gateway.connection import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    Connection,
)
from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.fanout.wiring import after_cutover, attach_second_backends, tap
from ocpp_gateway.reasons import CloseReason
from ocpp_gateway.routing import Forward, MessageView, Reject, Reply
from ocpp_gateway.schemas import is_transaction_message
from ocpp_gateway.transports import DEFAULT_TRANSPORT, Link, WakingLink
from ocpp_gateway.transports.base import as_framed, as_waking

if TYPE_CHECKING:
    from ocpp_gateway.runtime import Runtime
    from ocpp_gateway.violations.log import ViolationLog

__all__ = ["backend_pump", "run", "send_backend", "start_backend_pump"]

log = logging.getLogger("ocpp_gateway.relay")

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_PING = WSMsgType.PING
_PONG = WSMsgType.PONG
_CP: Literal["cp_to_csms"] = "cp_to_csms"
_CSMS: Literal["csms_to_cp"] = "csms_to_cp"
# What the core builds: a substitute is a CALLERROR standing in for an invalid CALLRESULT; a
# reply is a CALLERROR, or (2.1) a CALLRESULTERROR to the sender of an invalid CALLRESULT.
_CALLERROR = 4
_CALLRESULTERROR = 5


async def run(runtime: Runtime, conn: Connection) -> None:
    """Relay an accepted connection until it ends, then release it.

    Args:
        runtime: the process.
        conn: the connection, with its default link open and its socket prepared.
    """
    ws = conn.ws
    receive = ws.receive
    judge = conn.session.from_charge_point
    clock = monotonic
    limiter = runtime.security.new_rate_limiter()
    allow = limiter.allow if runtime.config.security.message_rate > 0 else None
    chain = runtime.chain
    violations = runtime.violations
    relaxing = bool(runtime.model_rules)
    link = conn.links[DEFAULT_TRANSPORT]
    link_send = link.send
    # A FramedLink takes the Verdict's facts with the frame (decided once per connection).
    framed = as_framed(link)
    send_frame = framed.send_frame if framed is not None else None
    send_cp = conn.sender.send
    call_origin = conn.call_origin
    registry = conn.registry
    runtime.capture.attach(conn)
    start_backend_pump(runtime, conn, DEFAULT_TRANSPORT, link)
    del link
    sides = attach_second_backends(runtime, conn, start_backend_pump)
    try:
        while True:
            # Nothing of the last frame stays alive idle.
            msg = data = verdict = out = primary_frame = None
            msg = await receive()
            now = conn.last_seen = clock()
            kind = msg.type
            if kind is _TEXT or kind is _BINARY:
                data = msg.data
                del msg
                verdict = judge(data, now)  # also counts the frame (Runtime.stats)
                if conn.capture is not None:
                    conn.capture.from_charge_point(data, verdict)
                message_type = verdict.message_type
                # Results are never rate-limited: they answer calls the backend made.
                if allow is not None and (message_type < 3 or message_type > 5) and not allow(now):
                    if not await _rate_limited(runtime, conn, verdict, data):
                        return
                    continue
                origin = DEFAULT_TRANSPORT
                if call_origin and 3 <= message_type <= 5:
                    # Popped before branching: a result that is replaced still goes home.
                    origin = call_origin.pop(verdict.unique_id or "", DEFAULT_TRANSPORT)
                if conn.gate is not None and 3 <= message_type <= 5:
                    conn.gate.primary_answered(verdict.unique_id or "")  # the next call may go
                if violations is not None and message_type == 2:
                    _boot_seen(violations, conn, verdict)
                if verdict.forward:
                    if verdict.observed:
                        _count_observed(runtime, conn, _CP, verdict, data)
                    if relaxing and verdict.relaxed is not None:
                        _count_relaxed(runtime, conn, verdict)
                    if message_type != 2:
                        if chain is not None or registry.drain_progress is not None:
                            _result_seen(runtime, conn, _CP, verdict, data)
                    elif chain is not None and await _plugin_call(
                        runtime, conn, _CP, verdict, data
                    ):
                        continue
                    out = data
                else:
                    out = verdict.substitute
                    reply = verdict.reply
                    if reply is not None or out is not None:
                        _count_rejected(runtime, conn, _CP, verdict, data)
                        if reply is not None:
                            await send_cp(reply)
                    else:
                        _count_drop(runtime, conn, _CP, verdict)
                if out is None:
                    continue
                # A substitute is a CALLERROR in place of the charge point's invalid result.
                out_type = message_type if out is data else _CALLERROR
                if conn.taps:
                    to = conn.primary if origin == DEFAULT_TRANSPORT else "gateway"
                    tap(conn, _CP, "charge_point", to, out, out_type, verdict)
                if origin == DEFAULT_TRANSPORT:
                    primary_frame = out
                    if conn.cutover is not None:
                        # The primary changed: its link, and the ids of the transactions the
                        # former primary began (the copies keep the charge point's own ids).
                        link, primary_frame = after_cutover(conn, out, out_type, verdict.action)
                        sides = conn.sides
                        link_send = link.send
                        framed = as_framed(link)
                        send_frame = framed.send_frame if framed is not None else None
                        del link
                    try:
                        if send_frame is None:
                            await link_send(primary_frame)
                        else:
                            unique_id = verdict.unique_id or ""
                            action = verdict.action or ""
                            await send_frame(primary_frame, out_type, unique_id, action, False)
                    except (TransportUnavailable, ConnectionError):
                        conn.end("upstream_lost")
                        return
                    if sides and out_type == 2:
                        # A copy of the charge point's CALL for each second backend (queued).
                        unique_id, action = verdict.unique_id or "", verdict.action or ""
                        for side in sides:
                            side.offer(out, unique_id, action)
                elif not await send_backend(
                    conn, runtime, origin, out, out_type, verdict.unique_id, verdict.action
                ):
                    return
            elif kind is _PING:
                await ws.pong(msg.data)
            elif kind is _PONG:
                conn.pong()
            else:
                conn.end(_close_reason(ws, msg.data))
                return
    except Exception:
        log.exception("connection failed", extra={"charge_point_id": conn.charge_point_id})
        conn.end("internal_error")
    finally:
        await conn.finish()


def start_backend_pump(runtime: Runtime, conn: Connection, name: str, link: Link) -> None:
    """Start the pump of a newly opened backend link: a task waiting in `recv`, or, for a
    `WakingLink`, a pump parked on the link (no task until the link has something).

    Args:
        runtime: the process.
        conn: the charge point's connection.
        name: the transport's name.
        link: its open link.
    """
    waking = as_waking(link)
    if waking is not None:
        waking.set_wake(_ParkedPump(runtime, conn, name, waking))
    else:
        conn.readers.append(asyncio.create_task(backend_pump(runtime, conn, name, link)))


class _ParkedPump:
    """The wake-up a `WakingLink` holds while its pump is parked: starts the pump task.
    (A slotted object: half the size of the equivalent `functools.partial`.)"""

    __slots__ = ("conn", "link", "name", "runtime")

    def __init__(self, runtime: Runtime, conn: Connection, name: str, link: WakingLink) -> None:
        self.runtime = runtime
        self.conn = conn
        self.name = name
        self.link = link

    def __call__(self) -> None:
        conn = self.conn
        pump = backend_pump(self.runtime, conn, self.name, self.link, parks=True)
        conn.readers.append(asyncio.create_task(pump))


async def backend_pump(
    runtime: Runtime, conn: Connection, name: str, link: Link, parks: bool = False
) -> None:
    """Relay what one backend link sends towards the charge point, until the link ends.

    Args:
        runtime: the process.
        conn: the charge point's connection.
        name: the transport's name.
        link: its open link.
        parks: `link` is a `WakingLink`: once it has nothing more, park the pump on it and
            end (`start_backend_pump`).
    """
    ws = conn.ws
    recv = link.recv
    recv_ready = cast(WakingLink, link).recv_ready if parks else None
    judge = conn.session.from_csms
    clock = monotonic
    chain = runtime.chain
    relaxing = bool(runtime.model_rules)
    send_cp = conn.sender.send
    call_origin = conn.call_origin
    track = runtime.track_origins
    registry = conn.registry
    code = CLOSE_TRY_AGAIN
    try:
        while True:
            verdict = data = None  # nothing of the last frame stays alive idle
            if recv_ready is not None and not recv_ready():
                # Idle: end this task; the link starts the pump again when it has a frame.
                _park(runtime, conn, name, link)
                return
            data = await recv()
            if data is None:
                break
            verdict = judge(data, clock())  # also counts the frame (Runtime.stats)
            if conn.capture is not None:
                conn.capture.from_backend(data, verdict, name)
            if verdict.forward:
                if verdict.observed:
                    _count_observed(runtime, conn, _CSMS, verdict, data)
                if relaxing and verdict.relaxed is not None:
                    _count_relaxed(runtime, conn, verdict)
                if verdict.message_type != 2:
                    if chain is not None or registry.drain_progress is not None:
                        _result_seen(runtime, conn, _CSMS, verdict, data)
                    if conn.candidates and name == DEFAULT_TRANSPORT:
                        for candidate in conn.candidates:
                            candidate.primary_answer(verdict.unique_id, data)
                else:
                    unique_id = verdict.unique_id
                    if track and unique_id is not None:
                        # The charge point's answer must go back to this backend. The session
                        # takes the same UniqueId and action again as a retransmission; from
                        # another backend it is a collision.
                        owner = call_origin.setdefault(unique_id, name)
                        if owner != name:
                            await _refuse_collision(runtime, conn, link, verdict)
                            continue
                    if chain is not None and await _plugin_call(
                        runtime, conn, _CSMS, verdict, data, origin=name
                    ):
                        if track and unique_id is not None:
                            call_origin.pop(unique_id, None)
                        continue
                if (
                    verdict.message_type != 2
                    or conn.gate is None
                    or name != DEFAULT_TRANSPORT
                    or conn.gate.primary_call(verdict.unique_id or "", data)
                ):
                    await send_cp(data)
                # else held until the gateway's call before it is over (the gate sends it);
                # the broker observers see it now, as they see every frame the charge point gets.
                if conn.taps:
                    sender = conn.primary if name == DEFAULT_TRANSPORT else name
                    tap(conn, _CSMS, sender, "charge_point", data, verdict.message_type, verdict)
            else:
                reply = verdict.reply
                substitute = verdict.substitute
                if reply is not None or substitute is not None:
                    _count_rejected(runtime, conn, _CSMS, verdict, data)
                    if reply is not None:
                        reply_type = _CALLRESULTERROR if verdict.message_type == 3 else _CALLERROR
                        await _send(link, reply, reply_type, verdict, from_gateway=True)
                    if substitute is not None:
                        await send_cp(substitute)
                else:
                    _count_drop(runtime, conn, _CSMS, verdict)
    except (TransportUnavailable, ConnectionError):
        pass
    except asyncio.CancelledError:
        return
    except Exception:
        log.exception("backend relay failed", extra={"transport": name})
        conn.end("internal_error")
        code = CLOSE_INTERNAL_ERROR
    # The backend is gone: close the charge point socket so that it queues its transaction
    # messages itself (Local Controller rule); never answer on its behalf. On a broker, the
    # link also ends when the charge point connected to another node, which now owns it.
    framed = as_framed(link)
    if framed is not None and framed.end_reason == "moved":
        await conn.close(CLOSE_POLICY, "connected elsewhere", "takeover")
        return
    conn.end("upstream_lost")
    if not ws.closed:
        message = b"backend connection lost" if code == CLOSE_TRY_AGAIN else b"internal error"
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=code, message=message)


def _park(runtime: Runtime, conn: Connection, name: str, link: Link) -> None:
    """End the running pump task of a `WakingLink` and park the pump on the link."""
    with contextlib.suppress(ValueError):
        conn.readers.remove(asyncio.current_task())  # type: ignore[arg-type]
    waking = cast(WakingLink, link)
    waking.set_wake(_ParkedPump(runtime, conn, name, waking))


async def send_backend(
    conn: Connection,
    runtime: Runtime,
    name: str,
    frame: bytes,
    message_type: int = 0,
    unique_id: str | None = None,
    action: str | None = None,
    from_gateway: bool = False,
) -> bool:
    """Send a frame to the named backend, opening its link (and its pump) on first use.

    Args:
        conn: the charge point's connection.
        runtime: the process.
        name: the transport's name.
        frame: the frame.
        message_type: its MessageTypeId, for a `FramedLink` (0: unknown, the link reads it).
        unique_id: its UniqueId.
        action: its action (of a result: the call's).
        from_gateway: the gateway answers the backend's own frame (`FramedLink.send_frame`).

    Returns:
        False when the charge point's connection is being closed (link lost or unknown).
    """
    link = conn.links.get(name)
    if link is None:
        transport = runtime.transports.get(name)
        if transport is None:
            log.error("plugin forwarded to an unknown transport", extra={"transport": name})
            await conn.close(CLOSE_INTERNAL_ERROR, "routing error", "internal_error")
            return False
        try:
            link = await transport.open(conn.charge_point_id, (conn.version,))
        except TransportUnavailable:
            runtime.metrics.upstream_connect_failures.labels(name).inc()
            await conn.close(CLOSE_TRY_AGAIN, "backend unavailable", "upstream_lost")
            return False
        conn.links[name] = link
        start_backend_pump(runtime, conn, name, link)
    try:
        framed = as_framed(link)
        if message_type and framed is not None:
            await framed.send_frame(
                frame, message_type, unique_id or "", action or "", from_gateway
            )
        else:
            await link.send(frame)
    except (TransportUnavailable, ConnectionError):
        await conn.close(CLOSE_TRY_AGAIN, "backend connection lost", "upstream_lost")
        return False
    return True


def _send(
    link: Link, frame: bytes, message_type: int, verdict: _core.Verdict, from_gateway: bool
) -> Awaitable[None]:
    """Send a frame about `verdict`'s message to a link: with the facts to a `FramedLink`."""
    framed = as_framed(link)
    if framed is not None:
        unique_id, action = verdict.unique_id or "", verdict.action or ""
        return framed.send_frame(frame, message_type, unique_id, action, from_gateway)
    return link.send(frame)


# -- slow paths: off the common frame's way ------------------------------------------------


def _result_seen(
    runtime: Runtime,
    conn: Connection,
    direction: DirectionName,
    verdict: _core.Verdict,
    data: bytes,
) -> None:
    """A forwarded result (or SEND) while draining or with plugins: wake the drain, tell the
    plugins (the call's duration is recorded by the pump)."""
    conn.registry.progress()
    if runtime.chain is not None:
        try:
            runtime.chain.on_call_result(_view(conn, direction, verdict, data))
        except Exception:
            log.exception("plugin on_call_result failed")


async def _plugin_call(
    runtime: Runtime,
    conn: Connection,
    direction: DirectionName,
    verdict: _core.Verdict,
    data: bytes,
    origin: str = DEFAULT_TRANSPORT,
) -> bool:
    """Ask the chain about a valid CALL. Returns True when the plugins handled it."""
    chain = runtime.chain
    assert chain is not None
    try:
        decision = chain.on_call(_view(conn, direction, verdict, data))
    except Exception:
        log.exception("plugin on_call failed")
        return False
    if isinstance(decision, Forward):
        if direction != _CP or decision.transport == DEFAULT_TRANSPORT:
            return False
        await send_backend(
            conn, runtime, decision.transport, data, 2, verdict.unique_id, verdict.action
        )
        return True
    if not isinstance(decision, Reply | Reject):
        return False
    unique_id = verdict.unique_id
    if isinstance(decision, Reply):
        frame = orjson.dumps([3, unique_id, dict(decision.payload)])
    else:
        frame = orjson.dumps([4, unique_id, decision.error_code, decision.description, {}])
    now = monotonic()
    # The answer passes the Session like any frame (validated, counted, its call timed).
    if direction == _CP:
        answer = conn.session.from_csms(frame, now)
        out = frame if answer.forward else answer.substitute
        if out is not None:
            if conn.capture is not None:
                conn.capture.from_gateway(_CSMS, out, verdict.action, "plugin")
            await conn.sender.send(out)
    else:
        answer = conn.session.from_charge_point(frame, now)
        out = frame if answer.forward else answer.substitute
        if out is not None:
            # The gateway answers the backend's CALL itself (for a command: rejected, unless
            # the plugin's CALLRESULT passed).
            out_type = answer.message_type if out is frame else _CALLERROR
            if conn.capture is not None:
                conn.capture.from_gateway(_CP, out, verdict.action, "plugin", origin)
            await send_backend(
                conn, runtime, origin, out, out_type, unique_id, verdict.action, True
            )
    return True


async def _rate_limited(
    runtime: Runtime, conn: Connection, verdict: _core.Verdict, data: bytes
) -> bool:
    """Handle a CALL (or unreadable frame) over the rate, already judged by the session.

    With rate_excess "callerror", a valid CALL is answered with a CALLERROR, except a
    transaction message (DESIGN: never answer those with a CALLERROR; the connection is closed
    instead, so the charger keeps the message); an invalid frame gets the session's own
    answer; anything else is dropped.

    Returns:
        False when the connection must end.
    """
    runtime.metrics.rate_limited.labels(runtime.metrics.action_label(verdict.action)).inc()
    if runtime.config.security.rate_excess == "close" or (
        verdict.forward
        and verdict.message_type == 2
        and is_transaction_message(verdict.action, data)
    ):
        conn.end("rate_limited")
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.close(code=CLOSE_POLICY, message=b"message rate exceeded")
        return False
    if not verdict.forward:
        if verdict.reply is not None:
            await conn.sender.send(verdict.reply)
        return True
    if verdict.message_type == 2 and verdict.unique_id is not None:
        code = _core.error_code_for(conn.version, "generic")
        frame = orjson.dumps([4, verdict.unique_id, code, "Message rate exceeded", {}])
        now = monotonic()
        answer = conn.session.from_csms(frame, now)  # clears the pending call
        if answer.forward:
            if conn.capture is not None:
                conn.capture.from_gateway(_CSMS, frame, verdict.action, "rate_limited")
            await conn.sender.send(frame)
    return True


async def _refuse_collision(
    runtime: Runtime, conn: Connection, link: Link, verdict: _core.Verdict
) -> None:
    """Answer a backend whose CALL reuses the UniqueId of another backend's pending call."""
    code = _core.error_code_for(conn.version, "framework")
    runtime.metrics.count_rejected(_CSMS, verdict.action, code)
    detail = "UniqueId in use by a pending call of another backend"
    frame = orjson.dumps([4, verdict.unique_id, code, detail, {}])
    await _send(link, frame, _CALLERROR, verdict, from_gateway=True)


def _count_observed(
    runtime: Runtime, conn: Connection, direction: str, verdict: _core.Verdict, data: bytes
) -> None:
    """A payload violation forwarded under an observe policy: counted and logged."""
    metrics = runtime.metrics
    metrics.observed_violations.labels(
        direction, metrics.action_label(verdict.action), verdict.error_code or "unknown"
    ).inc()
    if runtime.violations is not None:
        runtime.violations.record_verdict(conn.session, verdict, direction, data)


def _count_rejected(
    runtime: Runtime, conn: Connection, direction: str, verdict: _core.Verdict, data: bytes
) -> None:
    """A frame refused by validation (answered or replaced): counted and logged."""
    code = verdict.error_code or "unknown"
    conn.rejections += 1
    runtime.metrics.count_rejected(direction, verdict.action, code)
    if runtime.violations is not None:
        runtime.violations.record_verdict(conn.session, verdict, direction, data)
    runtime.frame_log.rejected(
        conn.charge_point_id, direction, verdict.action, code, verdict.error_detail
    )


def _count_relaxed(runtime: Runtime, conn: Connection, verdict: _core.Verdict) -> None:
    """A payload one of its model's relaxations let pass."""
    rule = verdict.relaxed
    if rule is not None:
        runtime.metrics.count_relaxed(conn.version, verdict.action, rule)


def _boot_seen(violations: ViolationLog, conn: Connection, verdict: _core.Verdict) -> None:
    """A charge point's BootNotification, forwarded or refused: its model and firmware go
    in the rollout log (so that a model with no violation is listed too)."""
    if verdict.action == "BootNotification":
        boot = conn.session.boot_info
        if boot is not None:
            violations.record_boot(conn.version, boot[1], boot[2])


def _count_drop(runtime: Runtime, conn: Connection, direction: str, verdict: _core.Verdict) -> None:
    reason = verdict.drop_reason or "unknown"
    if reason == "unmatched_result":
        runtime.metrics.unmatched_results.labels(direction).inc()
    runtime.metrics.dropped.labels(direction, reason).inc()
    runtime.frame_log.dropped(conn.charge_point_id, direction, verdict.action, reason)


def _view(
    conn: Connection, direction: DirectionName, verdict: _core.Verdict, data: bytes
) -> MessageView:
    return MessageView(
        conn.info, direction, verdict.message_type, verdict.unique_id, verdict.action, data
    )


def _close_reason(ws: web.WebSocketResponse, data: object) -> CloseReason:
    """Why the charge point's receive loop ended, as a connections_closed_total reason."""
    # After aiohttp's own close handshake ws.close_code is the peer's echo (or 1006), so read
    # the 1009 from the error message itself.
    if getattr(data, "code", None) == 1009 or ws.close_code == 1009:
        return "message_too_big"
    return "charge_point_closed"
