"""Graceful shutdown: stop accepting, let pending calls finish, then close every socket at once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from ocpp_gateway.connection import CLOSE_GOING_AWAY, Connection
from ocpp_gateway.registry import Registry

if TYPE_CHECKING:
    from ocpp_gateway.runtime import Runtime

__all__ = ["drain"]


async def drain(runtime: Runtime, registry: Registry[Connection], grace: float) -> None:
    """Drain a runtime.

    New handshakes are refused (503) from the first moment. While calls are pending on any
    connection, wait for them to be answered, at most `grace` seconds; then close every
    socket with 1001 at once, giving the close handshakes what is left of the budget (at least
    1 s): a socket whose close has not completed by then is dropped, so a charge point that
    stopped reading cannot hold up the shutdown. Last, the transports are closed and the
    metrics flushed.

    Args:
        runtime: the process to drain.
        registry: its connections.
        grace: seconds to wait for pending calls.
    """
    progress = registry.start_drain()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while any(conn.session.pending() for conn in registry.connections):
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(progress.wait(), remaining)
    closing = [
        asyncio.ensure_future(conn.close(CLOSE_GOING_AWAY, "gateway shutting down", "shutdown"))
        for conn in list(registry.connections)
    ]
    if closing:
        _, late = await asyncio.wait(closing, timeout=max(deadline - loop.time(), 1.0))
        for task in late:
            task.cancel()
    for transport in runtime.transports.values():
        await transport.close()
    if runtime.fanout is not None:
        await runtime.fanout.close()  # second backends' clients, candidates' stores
    runtime.metrics.flush()
    runtime.dump_violations()
