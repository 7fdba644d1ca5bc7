"""Memory after churn: charge point sockets the gateway closes itself are released at once.

Fault found by injection (aiohttp 3.14): with aiohttp's per-socket heartbeat, the charge
point's reply to the gateway's close re-armed the heartbeat timer, which then kept the whole
request/transport/WebSocketResponse graph of every socket the gateway closed (upstream lost,
1013) alive for 1.5 ping intervals. The gateway now pings from its own process timer; these
tests churn upstream-loss closes with the default ping interval and check that nothing of a
closed connection survives a garbage collection, and that traced memory stays flat.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import weakref

import aiohttp

from kit import WAIT, poll

from ._support import GatewayFactory, QueueTransport

ROUNDS = 10
PER_ROUND = 300


async def test_upstream_loss_closes_are_collected_at_once_and_memory_stays_flat(
    gateway_factory: GatewayFactory,
) -> None:
    backend = QueueTransport()
    # Defaults otherwise: ping every 60 s, which used to keep closed sockets for 90 s.
    gateway = await gateway_factory(backends={"default": backend}, security__message_rate=0)
    assert gateway.config.security.ping_interval == 60.0
    registry = gateway.registry
    traced: list[int] = []
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    tracemalloc.start()
    try:
        async with aiohttp.ClientSession(connector=connector) as client:
            for round_number in range(ROUNDS):
                sockets = await asyncio.gather(
                    *(
                        client.ws_connect(
                            f"{gateway.url}/ocpp/CHURN-{round_number}-{i}", protocols=("ocpp1.6",)
                        )
                        for i in range(PER_ROUND)
                    )
                )
                await poll(lambda: len(registry.connections) == PER_ROUND, "all connected")
                refs: list[weakref.ref[object]] = [weakref.ref(c) for c in registry.connections]
                refs += [weakref.ref(conn.ws) for conn in registry.connections]
                for link in backend.links.values():
                    link.incoming.put_nowait(None)  # the upstream of every charge point is lost
                backend.links.clear()
                closes = await asyncio.gather(
                    *(asyncio.wait_for(ws.receive(), WAIT) for ws in sockets)
                )
                assert {(msg.type, msg.data) for msg in closes} == {(aiohttp.WSMsgType.CLOSE, 1013)}
                for ws in sockets:
                    await ws.close()
                await poll(lambda: not registry.connections, "all closed")
                del sockets, closes
                while not backend.opened.empty():
                    backend.opened.get_nowait()
                gc.collect()
                alive = sum(ref() is not None for ref in refs)
                assert alive == 0, f"round {round_number}: {alive} objects of closed connections"
                traced.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    # One round's sockets kept alive would be about 300 x 8 KB = 2.4 MB per round.
    growth = traced[-1] - traced[1]
    assert growth < 1_500_000, f"traced memory grew by {growth} bytes over {ROUNDS - 2} rounds"
