"""Bounded outbound queue: a charge point that does not read is closed, not buffered without end.

Every frame to a charge point goes through its connection's `BoundedSender`. Before each write
it compares what the socket still holds unwritten (the transport's write buffer) plus the new
frame with `max_outbound_queue_bytes`; over it, the charge point is a slow reader: the
connection is closed with 1008 (the close frame queues behind the unread data), and the socket
is aborted `grace` seconds later if the peer still has not read it. The transport's high-water
mark is raised just above the bound, so a send never waits on flow control: memory per
connection stays bounded and no task is ever parked on a peer that stopped reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, cast

from aiohttp import WSMsgType, web

__all__ = ["CLOSE_POLICY", "BoundedSender"]

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008
# Room above the bound for what is written unchecked (control frames, framing, deflate overhead).
_HIGH_WATER_MARGIN = 64 * 1024
_TEXT = WSMsgType.TEXT


class _Buffered(Protocol):
    """What the bound needs of a transport (uvloop's transports are not asyncio subclasses)."""

    def get_write_buffer_size(self) -> int: ...

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...

    def abort(self) -> None: ...


class BoundedSender:
    """Sends text frames to one charge point within the outbound bound.

    Args:
        ws: the prepared WebSocket of the charge point.
        transport: its transport (`request.transport`); None disables the bound.
        limit: bytes allowed to wait unwritten; 0 or less disables the bound.
        grace: seconds the slow reader gets to read its close frame before the socket is aborted.
        on_slow_reader: called once, before closing, when the bound is exceeded (the connection
            records its close reason there).
    """

    __slots__ = ("_buffered", "_grace", "_limit", "_on_slow", "_send_frame", "_transport", "_ws")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        limit: int,
        grace: float,
        on_slow_reader: Callable[[], None],
    ) -> None:
        self._ws = ws
        self._send_frame: Callable[..., Coroutine[Any, Any, None]] = ws.send_frame
        self._grace = grace
        self._on_slow = on_slow_reader
        self._transport: _Buffered | None = None
        self._buffered: Callable[[], int] | None = None
        self._limit = limit
        if limit > 0 and all(
            hasattr(transport, name)
            for name in ("get_write_buffer_size", "set_write_buffer_limits", "abort")
        ):
            write_transport = self._transport = cast(_Buffered, transport)
            with contextlib.suppress(NotImplementedError, AttributeError):
                write_transport.set_write_buffer_limits(high=limit + _HIGH_WATER_MARGIN)
            self._buffered = write_transport.get_write_buffer_size

    def send(self, frame: bytes) -> Awaitable[None]:
        """Send one text frame (hot path: returns aiohttp's own coroutine, no extra layer).

        Args:
            frame: UTF-8 JSON bytes.

        Returns:
            The awaitable of the write. Once the bound was exceeded, frames are dropped: the
            connection is already closing.
        """
        buffered = self._buffered
        if buffered is None or buffered() + len(frame) <= self._limit:
            return self._send_frame(frame, _TEXT)
        return self._slow_reader()

    async def _slow_reader(self) -> None:
        transport = self._transport
        self._buffered = None
        self._send_frame = _dropped
        self._on_slow()
        log.info("charge point closed as a slow reader", extra={"limit_bytes": self._limit})
        loop = asyncio.get_running_loop()
        loop.call_later(max(self._grace, 0.0), _abort, transport)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._ws.close(code=CLOSE_POLICY, message=b"slow reader")


def _dropped(
    frame: bytes, opcode: WSMsgType, compress: int | None = None
) -> Coroutine[Any, Any, None]:
    return _nothing()


async def _nothing() -> None:
    return None


def _abort(transport: _Buffered | None) -> None:
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.abort()
