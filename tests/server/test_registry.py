"""The registry of a running gateway: admission registers, a connection leaves on close and
end, reservations refuse newcomers, the first close reason is the one counted."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from kit import poll
from ocpp_gateway.server import RunningGateway

from ._support import GatewayFactory, scrape

GAUGE = 'ocpp_gateway_connected_charge_points{ocpp_version="ocpp1.6"}'


def closed(reason: str) -> str:
    return f'ocpp_gateway_connections_closed_total{{reason="{reason}"}}'


async def connect(
    client: aiohttp.ClientSession, gateway: RunningGateway, charge_point_id: str
) -> aiohttp.ClientWebSocketResponse:
    return await client.ws_connect(f"{gateway.url}/ocpp/{charge_point_id}", protocols=("ocpp1.6",))


async def test_admission_registers_and_the_end_of_the_relay_forgets(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory()
    registry = gateway.registry
    ws = await connect(client, gateway, "REG-1")
    # Registered by admission before the upgrade's answer: no wait needed once connected.
    conn = registry.holder("REG-1")
    assert conn is not None and conn in registry.connections
    assert registry.reserved == set()
    assert (await scrape(client, gateway))[GAUGE] == 1.0
    await ws.close()
    await poll(lambda: not registry.connections, "REG-1 forgotten")
    assert registry.holder("REG-1") is None
    metrics = await scrape(client, gateway)
    assert metrics[GAUGE] == 0.0
    assert metrics[closed("charge_point_closed")] == 1.0


async def test_the_first_close_reason_is_the_one_counted(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory()
    ws = await connect(client, gateway, "REG-2")
    conn = gateway.registry.holder("REG-2")
    assert conn is not None and conn.close_reason is None
    assert conn.end("slow_reader") == "slow_reader"
    assert conn.end("takeover") == "slow_reader"
    await ws.close()  # the relay ends with "charge_point_closed", which comes too late
    await poll(lambda: not gateway.registry.connections, "REG-2 forgotten")
    metrics = await scrape(client, gateway)
    assert metrics[closed("slow_reader")] == 1.0
    assert metrics.get(closed("charge_point_closed"), 0.0) == 0.0
    assert conn.close_reason == "slow_reader"


async def test_a_reserved_identity_refuses_newcomers_until_released(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory()
    registry = gateway.registry
    with registry.reserve("REG-3"):
        assert await registry.answers_ping("REG-3")  # being admitted here: the newest claim
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await connect(client, gateway, "REG-3")
        assert refused.value.status == 409
    assert registry.reserved == set()
    assert not await registry.answers_ping("REG-3")  # held nowhere here
    ws = await connect(client, gateway, "REG-3")
    reading = asyncio.ensure_future(ws.receive())  # a reading client answers pings itself
    assert await registry.answers_ping("REG-3")
    assert (await scrape(client, gateway))[
        'ocpp_gateway_handshakes_refused_total{reason="takeover"}'
    ] == 1.0
    await ws.close()
    await reading


async def test_a_closing_connection_gives_up_its_identity_at_once(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory()
    registry = gateway.registry
    ws = await connect(client, gateway, "REG-4")
    conn = registry.holder("REG-4")
    assert conn is not None
    await conn.close(1001, "bye", "shutdown")
    assert registry.holder("REG-4") is None  # displaced before its relay ended
    msg = await ws.receive(timeout=10.0)
    assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1001
    await poll(lambda: not registry.connections, "REG-4 forgotten")
    assert (await scrape(client, gateway))[closed("shutdown")] == 1.0


async def test_draining_refuses_handshakes_and_readiness(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory()
    http = gateway.url.replace("ws://", "http://", 1)
    async with client.get(f"{http}/readyz") as response:
        assert response.status == 200
    progress = gateway.registry.start_drain()
    assert not progress.is_set()
    async with client.get(f"{http}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["accepting"] is False
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(client, gateway, "REG-5")
    assert refused.value.status == 503
    gateway.registry.progress()
    assert progress.is_set()
