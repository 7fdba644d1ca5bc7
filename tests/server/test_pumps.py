"""The relay's two pumps against in-memory backend links (no CSMS): each verdict's path."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from kit import WAIT

from ._support import GatewayFactory, QueueTransport, receive_frame, scrape

# A backend link with a task waiting in recv, and one that wakes a parked pump (broker links).
both_pumps = pytest.mark.parametrize("waking", [False, True], ids=["waiting", "waking"])


async def _connect(
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
    waking: bool = False,
    **overrides: object,
) -> tuple[QueueTransport, aiohttp.ClientWebSocketResponse]:
    backend = QueueTransport(waking=waking)
    gateway = await gateway_factory(backends={"default": backend}, **overrides)
    ws = await client.ws_connect(f"{gateway.url}/ocpp/PUMP1", protocols=("ocpp1.6",))
    return backend, ws


async def test_charge_point_pump_forwards_bytes_and_answers_invalid_calls(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    backend, ws = await _connect(gateway_factory, client)
    link = await backend.next_link()
    assert (link.charge_point_id, link.version) == ("PUMP1", "ocpp1.6")
    call = b'[2, "h-1", "Heartbeat", {}]'  # spaces kept: the bytes are forwarded unchanged
    await ws.send_bytes(call)
    assert await link.next_sent() == call
    await ws.send_str('[2,"r-1","Reset",{"type":"Hard"}]')  # a CSMS action from a charge point
    assert json.loads(await receive_frame(ws))[:3] == [4, "r-1", "NotSupported"]
    await ws.send_str('[3,"nobody","{}"]')  # answers no pending call: dropped
    await ws.send_str('[2,"h-2","Heartbeat",{}]')
    assert await link.next_sent() == b'[2,"h-2","Heartbeat",{}]'
    assert link.sent.empty()
    await ws.close()


@both_pumps
async def test_backend_pump_validates_both_ways(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession, waking: bool
) -> None:
    backend, ws = await _connect(gateway_factory, client, waking)
    link = await backend.next_link()
    link.incoming.put_nowait(b'[2,"c-1","ClearCache",{}]')
    assert await receive_frame(ws) == b'[2,"c-1","ClearCache",{}]'
    await ws.send_str('[3,"c-1",{"status":"Accepted"}]')
    assert await link.next_sent() == b'[3,"c-1",{"status":"Accepted"}]'
    # An invalid CALL from the backend is answered to the backend, never sent on.
    link.incoming.put_nowait(b'[2,"c-2","Reset",{"type":"Sideways"}]')
    assert json.loads(await link.next_sent())[:3] == [4, "c-2", "PropertyConstraintViolation"]
    # An invalid answer from the charge point is replaced by a CALLERROR to the backend.
    link.incoming.put_nowait(b'[2,"c-3","ClearCache",{}]')
    await receive_frame(ws)
    await ws.send_str('[3,"c-3",{"status":"Maybe"}]')
    assert json.loads(await link.next_sent())[:3] == [4, "c-3", "PropertyConstraintViolation"]
    await ws.close()


@both_pumps
async def test_backend_gone_closes_the_charge_point_with_1013(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession, waking: bool
) -> None:
    backend, ws = await _connect(gateway_factory, client, waking)
    link = await backend.next_link()
    link.incoming.put_nowait(None)  # the backend link ends
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1013
    assert link.closed  # the gateway closed its side of the link too


async def test_backend_refusing_the_link_refuses_the_handshake(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    backend = QueueTransport()
    backend.refuse = True
    gateway = await gateway_factory(backends={"default": backend})
    try:
        await client.ws_connect(f"{gateway.url}/ocpp/PUMP2", protocols=("ocpp1.6",))
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 503
    else:
        raise AssertionError("the handshake should have been refused")
    metrics = await scrape(client, gateway)
    assert metrics['ocpp_gateway_handshakes_refused_total{reason="upstream_unavailable"}'] == 1.0
