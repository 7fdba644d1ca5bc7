"""One simulated charge point: a single task that speaks raw OCPP-J over an aiohttp WebSocket.

The task multiplexes everything on one `receive()` with a timeout: it sends the next queued CALL
when none is outstanding (OCPP-J allows one at a time), answers CSMS-initiated CALLs as they
arrive, and fires its timers (heartbeat, status, transaction steps) when the receive times out.
Version-specific behaviour lives in `v16.py` and `v201.py`, which subclass `SimChargePoint`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl as ssl_module
import time
from collections import deque
from typing import Any, ClassVar

import aiohttp
import orjson

from ocpp_gateway.simulate.profile import Profile
from ocpp_gateway.simulate.responses import JsonObject, answer_call
from ocpp_gateway.simulate.stats import FleetStats

__all__ = ["Clock", "FleetContext", "SimChargePoint"]


log = logging.getLogger("ocpp_gateway.simulate")

_CALL = 2
_CALLRESULT = 3
_CALLERROR = 4
_WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)


class Clock:
    """Wall-clock time stamps in OCPP's date-time format, rebuilt at most once a second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def timestamp(self) -> str:
        """The current UTC time as "YYYY-MM-DDTHH:MM:SSZ"."""
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._text


class FleetContext:
    """What every charge point of a fleet shares: profile, counters, randomness, clock, and
    the credentials (HTTP Basic password, TLS context) used at the handshake."""

    __slots__ = ("clock", "password", "profile", "rng", "ssl", "stats")

    def __init__(
        self,
        profile: Profile,
        stats: FleetStats,
        rng: random.Random,
        password: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.profile = profile
        self.stats = stats
        self.rng = rng
        self.clock = Clock()
        self.password = password
        self.ssl = ssl


class _Pending:
    """The one outstanding CALL: `sent_at` is perf_counter() (loop.time() of uvloop has only
    millisecond resolution), `deadline` is in loop.time()."""

    __slots__ = ("action", "deadline", "sent_at", "unique_id")

    def __init__(self, unique_id: str, action: str, sent_at: float, deadline: float) -> None:
        self.unique_id = unique_id
        self.action = action
        self.sent_at = sent_at
        self.deadline = deadline


class SimChargePoint:
    """The version-independent part of a simulated charge point.

    Subclasses set `version` and implement the hooks `boot_payload`, `on_booted`, `on_timer`,
    `on_result` and `on_error`; they may extend `on_call`. Hooks never do I/O: they queue CALLs
    with `enqueue` and arm timers with `arm`.
    """

    version: ClassVar[str] = ""
    __slots__ = (
        "_booted",
        "_ctx",
        "_next_id",
        "_outstanding",
        "_queue",
        "_timers",
        "charge_point_id",
        "misbehaving",
    )

    def __init__(self, charge_point_id: str, ctx: FleetContext) -> None:
        self.charge_point_id = charge_point_id
        self._ctx = ctx
        self.misbehaving = ctx.rng.random() < ctx.profile.misbehave_fraction
        self._next_id = 0
        self._queue: deque[tuple[str, JsonObject, bool]] = deque()
        self._timers: dict[str, float] = {}
        self._outstanding: _Pending | None = None
        self._booted = False

    # ----------------------------------------------------------------- hooks for subclasses

    def boot_payload(self, invalid: bool) -> JsonObject:
        """The BootNotification request; `invalid`: with an over-long model name."""
        raise NotImplementedError

    def on_booted(self, now: float) -> None:
        """The CSMS accepted the boot: queue the first statuses and arm the timers."""
        raise NotImplementedError

    def on_timer(self, name: str, now: float) -> None:
        """Timer `name` fired (it is disarmed; re-arm it to repeat)."""
        raise NotImplementedError

    def on_result(self, action: str, payload: Any, now: float) -> None:
        """Our CALL of `action` (not BootNotification) got a CALLRESULT with `payload`."""
        raise NotImplementedError

    def on_error(self, action: str, code: str, now: float) -> None:
        """Our CALL of `action` (not BootNotification) got a CALLERROR, or timed out
        (`code` == "timeout")."""
        raise NotImplementedError

    def on_call(self, action: str, payload: JsonObject, now: float) -> JsonObject | None:
        """Answer a CSMS-initiated CALL; None answers NotImplemented."""
        return answer_call(self.version, action, payload)

    # ---------------------------------------------------------------------- helpers

    @property
    def ctx(self) -> FleetContext:
        """The shared fleet context."""
        return self._ctx

    @property
    def booted(self) -> bool:
        """Whether the CSMS accepted our last BootNotification on the current socket."""
        return self._booted

    def enqueue(self, action: str, payload: JsonObject, invalid: bool = False) -> None:
        """Queue a CALL; `invalid` marks a deliberately invalid one (counted apart)."""
        self._queue.append((action, payload, invalid))

    def arm(self, name: str, delay: float, now: float, first: bool = False) -> None:
        """Fire timer `name` `delay` seconds after `now`; a delay <= 0 disarms it.

        With `first` and the profile's jitter, the delay is drawn at random in [0, delay).
        """
        if delay <= 0:
            self._timers.pop(name, None)
            return
        if first and self._ctx.profile.jitter:
            delay *= self._ctx.rng.random()
        self._timers[name] = now + delay

    def queued(self, action: str) -> bool:
        """Whether a CALL of `action` waits in the queue (periodic timers skip a beat then, so
        that a slow peer does not make the queue grow without bound)."""
        return any(queued_action == action for queued_action, _, _ in self._queue)

    def disarm(self, name: str) -> None:
        """Cancel timer `name` if armed."""
        self._timers.pop(name, None)

    def timestamp(self) -> str:
        """The current time stamp for payloads."""
        return self._ctx.clock.timestamp()

    def misbehave_now(self) -> bool:
        """For a misbehaving charge point: whether this CALL should be the invalid one."""
        return self.misbehaving and self._ctx.rng.random() < self._ctx.profile.misbehave_probability

    # ------------------------------------------------------------------------- boot

    def _send_boot(self, first: bool) -> None:
        # Only the first boot of a connection may be invalid, so misbehaving ones boot too.
        invalid = first and self.misbehave_now()
        self.enqueue("BootNotification", self.boot_payload(invalid), invalid)

    def _on_boot_answer(self, payload: Any, now: float) -> None:
        status = payload.get("status") if isinstance(payload, dict) else None
        if self._booted:
            return  # a BootNotification sent on request (TriggerMessage) changes nothing
        if status == "Accepted":
            self._booted = True
            self._ctx.stats.booted += 1
            self.on_booted(now)
            return
        interval = payload.get("interval", 0) if isinstance(payload, dict) else 0
        if not isinstance(interval, int | float) or interval <= 0:
            interval = self._ctx.profile.boot_retry_interval
        self.arm("boot", float(interval), now)

    # ------------------------------------------------------------------------ the loop

    async def run(self, session: aiohttp.ClientSession, url: str, delay: float = 0.0) -> None:
        """Connect, boot and behave; reconnect with exponential backoff whenever the socket
        closes or cannot be opened. Runs until cancelled.

        Args:
            session: the (shared) client session to connect with.
            url: the full WebSocket URL of this charge point (`.../ocpp/{id}`).
            delay: seconds to wait before the first connection attempt (ramp-up).
        """
        profile = self._ctx.profile
        if delay > 0:
            await asyncio.sleep(delay)
        backoff = profile.reconnect_min
        while True:
            try:
                booted = await self._connect_once(session, url)
            except Exception:  # a bug here must not silently shrink the fleet
                log.exception("simulated charge point %s failed", self.charge_point_id)
                self._ctx.stats.internal_errors += 1
                booted = False
            if booted:
                backoff = profile.reconnect_min
            await asyncio.sleep(backoff * (0.5 + 0.5 * self._ctx.rng.random()))
            backoff = min(backoff * 2.0, profile.reconnect_max)

    async def _connect_once(self, session: aiohttp.ClientSession, url: str) -> bool:
        """One connection from handshake to close. Returns whether it got booted."""
        stats = self._ctx.stats
        try:
            async with asyncio.timeout(self._ctx.profile.connect_timeout):
                password = self._ctx.password
                ws = await session.ws_connect(
                    url,
                    protocols=(self.version,),
                    headers=(
                        {"Authorization": aiohttp.encode_basic_auth(self.charge_point_id, password)}
                        if password
                        else None
                    ),
                    ssl=self._ctx.ssl if self._ctx.ssl is not None else True,
                    timeout=_WS_TIMEOUT,
                    autoping=True,
                    decode_text=False,
                    max_msg_size=0,
                )
        except aiohttp.WSServerHandshakeError as exc:
            stats.record_handshake_failure(str(exc.status))
            return False
        except (aiohttp.ClientError, OSError, TimeoutError):
            stats.record_connect_failure()
            return False
        if ws.protocol != self.version:
            stats.record_handshake_failure("subprotocol")
            await ws.close()
            return False
        stats.record_connected(+1)
        booted = False
        try:
            await self._serve(ws)
        finally:
            booted = self._booted
            if self._booted:
                stats.booted -= 1
                self._booted = False
            stats.record_connected(-1)
            self._outstanding = None
            self._queue.clear()
            self._timers.clear()
            await ws.close()
        return booted

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        loop = asyncio.get_running_loop()
        self._send_boot(first=True)
        while True:
            now = loop.time()
            pending = self._outstanding
            if pending is None:
                if self._timers:
                    self._fire_timers(now)
                if self._queue:
                    await self._send_next(ws, now)
                    pending = self._outstanding
            if pending is not None:
                timeout: float | None = pending.deadline - now
            elif self._timers:
                timeout = min(self._timers.values()) - now
            else:
                timeout = None
            if timeout is not None and timeout <= 0.0:
                if pending is not None:
                    self._expire(pending, now)
                continue
            try:
                msg = await ws.receive(timeout)
            except TimeoutError:
                pending = self._outstanding
                if pending is not None and loop.time() >= pending.deadline:
                    self._expire(pending, loop.time())
                continue
            if msg.type is aiohttp.WSMsgType.TEXT:
                await self._on_frame(ws, msg.data, loop.time())
            elif msg.type is not aiohttp.WSMsgType.BINARY:
                return  # CLOSE, CLOSING, CLOSED or ERROR: the socket is gone

    def _fire_timers(self, now: float) -> None:
        timers = self._timers
        due = [name for name, when in timers.items() if when <= now]
        for name in due:
            # An earlier timer of this round may have disarmed or re-armed this one.
            when = timers.get(name)
            if when is None or when > now:
                continue
            del timers[name]
            if name == "boot":
                self._send_boot(first=False)
            else:
                self.on_timer(name, now)

    async def _send_next(self, ws: aiohttp.ClientWebSocketResponse[bool], now: float) -> None:
        action, payload, invalid = self._queue.popleft()
        self._next_id += 1
        unique_id = str(self._next_id)
        stats = self._ctx.stats
        stats.record_sent(action)
        if invalid:
            stats.invalid_sent += 1
        self._outstanding = _Pending(
            unique_id, action, time.perf_counter(), now + self._ctx.profile.call_timeout
        )
        await ws.send_frame(
            orjson.dumps([_CALL, unique_id, action, payload]), aiohttp.WSMsgType.TEXT
        )

    def _expire(self, pending: _Pending, now: float) -> None:
        self._outstanding = None
        self._ctx.stats.record_timeout(pending.action)
        if pending.action == "BootNotification":
            self.arm("boot", self._ctx.profile.boot_retry_interval, now)
        else:
            self.on_error(pending.action, "timeout", now)

    async def _on_frame(
        self, ws: aiohttp.ClientWebSocketResponse[bool], data: bytes | str, now: float
    ) -> None:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(frame, list) or len(frame) < 3:
            return
        message_type = frame[0]
        if message_type == _CALL and len(frame) == 4:
            await self._answer(ws, frame[1], frame[2], frame[3], now)
            return
        pending = self._outstanding
        if pending is None or frame[1] != pending.unique_id:
            self._ctx.stats.unmatched += 1
            return
        if message_type == _CALLRESULT:
            self._outstanding = None
            self._ctx.stats.record_answer(pending.action, time.perf_counter() - pending.sent_at)
            if pending.action == "BootNotification":
                self._on_boot_answer(frame[2], now)
            else:
                self.on_result(pending.action, frame[2], now)
        elif message_type == _CALLERROR:
            self._outstanding = None
            code = frame[2] if isinstance(frame[2], str) else "?"
            self._ctx.stats.record_error(pending.action, code)
            if pending.action == "BootNotification":
                self.arm("boot", self._ctx.profile.boot_retry_interval, now)
            else:
                self.on_error(pending.action, code, now)
        # Other message types (2.1 CALLRESULTERROR/SEND) are not spoken by this simulator.

    async def _answer(
        self,
        ws: aiohttp.ClientWebSocketResponse[bool],
        unique_id: Any,
        action: Any,
        payload: Any,
        now: float,
    ) -> None:
        if not isinstance(action, str) or not isinstance(payload, dict):
            return
        self._ctx.stats.record_received_call(action)
        response = self.on_call(action, payload, now)
        if response is None:
            frame = [_CALLERROR, unique_id, "NotImplemented", f"{action} is not supported", {}]
        else:
            frame = [_CALLRESULT, unique_id, response]
        await ws.send_frame(orjson.dumps(frame), aiohttp.WSMsgType.TEXT)
