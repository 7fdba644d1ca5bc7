"""What an idle connection keeps: no pump task on a waking (broker) link, and none of the
handshake state aiohttp would keep for a socket that is upgraded."""

from __future__ import annotations

import asyncio

import aiohttp

from kit import poll
from ocpp_gateway.connection import Connection

from ._support import GatewayFactory, QueueTransport, WakingQueueLink, receive_frame


def _pump_tasks() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "backend_pump"
    ]


async def _connect(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession, waking: bool
) -> tuple[QueueTransport, Connection, aiohttp.ClientWebSocketResponse]:
    backend = QueueTransport(waking=waking)
    gateway = await gateway_factory(backends={"default": backend})
    ws = await client.ws_connect(f"{gateway.url}/ocpp/MEM1", protocols=("ocpp1.6",))
    await poll(lambda: "MEM1" in gateway.registry.live, "MEM1 connected")
    return backend, gateway.registry.live["MEM1"], ws


async def test_an_idle_connection_on_a_waking_link_holds_no_pump_task(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    backend, conn, ws = await _connect(gateway_factory, client, waking=True)
    link = await backend.next_link()
    assert isinstance(link, WakingQueueLink)
    assert link.wake is not None and conn.readers == [] and _pump_tasks() == []
    for n in range(3):  # each frame wakes the pump, which parks again once it has relayed it
        call = f'[2,"c-{n}","ClearCache",{{}}]'.encode()
        link.incoming.put_nowait(call)
        assert await receive_frame(ws) == call
        await poll(lambda: link.wake is not None, "the pump parked again")
        assert conn.readers == [] and _pump_tasks() == []
        await ws.send_str(f'[3,"c-{n}",{{"status":"Accepted"}}]')
        assert await link.next_sent() == f'[3,"c-{n}",{{"status":"Accepted"}}]'.encode()
    assert link.wakes == 3
    await ws.close()
    await poll(lambda: link.closed, "the link closed with the connection")
    assert link.wake is None, "the parked pump goes with the connection"


async def test_a_link_without_wake_up_keeps_its_pump_task(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    _, conn, ws = await _connect(gateway_factory, client, waking=False)
    assert len(conn.readers) == 1 and conn.readers[0] in _pump_tasks()
    await ws.close()


async def test_the_handshake_state_aiohttp_keeps_is_released_after_the_upgrade(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # admission.release_handshake_state: if this fails after an aiohttp upgrade, the private
    # attributes it clears have changed: check them again and adapt it (or drop the item).
    backend, conn, ws = await _connect(gateway_factory, client, waking=False)
    protocol = conn._request.protocol
    assert protocol._upgraded and protocol._payload_parser is not None
    assert protocol._parser is None
    writer = conn.ws._writer
    assert writer is not None and writer.use_mask is False and writer.get_random_bits is None
    assert len(conn.ws.headers) == 0
    link = await backend.next_link()  # the socket still works both ways
    await ws.send_str('[2,"h-1","Heartbeat",{}]')
    assert await link.next_sent() == b'[2,"h-1","Heartbeat",{}]'
    link.incoming.put_nowait(b'[2,"c-1","ClearCache",{}]')
    assert await receive_frame(ws) == b'[2,"c-1","ClearCache",{}]'
    await ws.close()
