"""Bounded outbound queue: a charge point that does not read is closed, not buffered without end.

The server sends every frame to a charge point through the function `bounded_sender` returns.
Before each write it compares what the socket still holds unwritten (the transport's write
buffer) plus the new frame with `max_outbound_queue_bytes`; over it, the charge point is a slow
reader: the connection is closed with 1008 (the close frame queues behind the unread data), and
the socket is aborted `grace` seconds later if the peer still has not read it. The transport's
high-water mark is raised just above the bound, so a send never waits on flow control: memory per
connection stays bounded and no task is ever parked on a peer that stopped reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008
# Room above the bound for what is written unchecked (control frames, framing, deflate overhead).
_HIGH_WATER_MARGIN = 64 * 1024

SendFrame = Callable[[bytes, WSMsgType], Awaitable[None]]


class _Buffered(Protocol):
    """What the bound needs of a transport (uvloop's transports are not asyncio subclasses)."""

    def get_write_buffer_size(self) -> int: ...

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...

    def abort(self) -> None: ...


def bounded_sender(
    ws: web.WebSocketResponse,
    transport: asyncio.BaseTransport | None,
    limit: int,
    grace: float,
    on_slow_reader: Callable[[], None],
) -> SendFrame:
    """Wrap `ws.send_frame` with the outbound bound of one connection.

    Args:
        ws: the prepared WebSocket of the charge point.
        transport: its transport (`request.transport`); None disables the bound.
        limit: bytes allowed to wait unwritten; 0 or less disables the bound.
        grace: seconds the slow reader gets to read its close frame before the socket is aborted.
        on_slow_reader: called once, before closing, when the bound is exceeded (the server
            records the close reason there).

    Returns:
        An async `send(data, opcode)` with the signature of `ws.send_frame`. After the bound is
        exceeded it drops frames silently: the connection is already closing.
    """
    if limit <= 0 or not all(
        hasattr(transport, name)
        for name in ("get_write_buffer_size", "set_write_buffer_limits", "abort")
    ):
        return ws.send_frame
    write_transport = cast(_Buffered, transport)
    with contextlib.suppress(NotImplementedError, AttributeError):
        write_transport.set_write_buffer_limits(high=limit + _HIGH_WATER_MARGIN)
    buffered = write_transport.get_write_buffer_size
    send_frame = ws.send_frame
    slow = False

    async def send(data: bytes, opcode: WSMsgType) -> None:
        nonlocal slow
        if slow:
            return
        if buffered() + len(data) <= limit:
            await send_frame(data, opcode)
            return
        slow = True
        on_slow_reader()
        log.info("charge point closed as a slow reader", extra={"limit_bytes": limit})
        loop = asyncio.get_running_loop()
        loop.call_later(max(grace, 0.0), _abort, write_transport)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.close(code=CLOSE_POLICY, message=b"slow reader")

    return send


def _abort(transport: _Buffered) -> None:
    with contextlib.suppress(Exception):
        transport.abort()
