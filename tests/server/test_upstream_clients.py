"""The two WebSocket clients of the upstream link (picows by default, aiohttp) behave the same."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from kit import WAIT

from ._support import Csms, GatewayFactory, receive_frame

CLIENTS = ("picows", "aiohttp")


@pytest.mark.parametrize("upstream_client", CLIENTS)
async def test_relay_and_upstream_loss(
    upstream_client: str,
    csms: Csms,
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
) -> None:
    gateway = await gateway_factory(upstream__url=csms.url, upstream__client=upstream_client)
    ws = await client.ws_connect(f"{gateway.url}/ocpp/UP1", protocols=("ocpp2.0.1",))
    link = await csms.next_link()
    assert link.protocol == "ocpp2.0.1"
    await ws.send_str('[2,"h-1","Heartbeat",{}]')
    assert await link.next_frame() == b'[2,"h-1","Heartbeat",{}]'
    assert json.loads(await receive_frame(ws))[:2] == [3, "h-1"]
    await link.send(b'[2,"c-1","ClearCache",{}]')
    assert await receive_frame(ws) == b'[2,"c-1","ClearCache",{}]'
    await ws.send_str('[3,"c-1",{"status":"Accepted"}]')
    assert await link.next_frame() == b'[3,"c-1",{"status":"Accepted"}]'
    await link.ws.close()
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1013)


@pytest.mark.parametrize("upstream_client", CLIENTS)
async def test_a_fragmented_message_from_the_csms_arrives_whole(
    upstream_client: str,
    csms: Csms,
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
) -> None:
    gateway = await gateway_factory(upstream__url=csms.url, upstream__client=upstream_client)
    ws = await client.ws_connect(f"{gateway.url}/ocpp/UP2", protocols=("ocpp1.6",))
    link = await csms.next_link()
    frame = b'[2,"c-2","ClearCache",{}]'
    # RFC 6455 §5.4: a text frame without FIN, then a continuation frame with FIN (unmasked:
    # server to client), written raw on the CSMS's socket.
    transport = link.ws._req.transport  # type: ignore[union-attr]
    assert transport is not None
    head, tail = frame[:10], frame[10:]
    transport.write(bytes([0x01, len(head)]) + head + bytes([0x80, len(tail)]) + tail)
    assert await receive_frame(ws) == frame


@pytest.mark.parametrize("upstream_client", CLIENTS)
async def test_a_csms_refusing_the_subprotocol_refuses_the_handshake(
    upstream_client: str, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    from aiohttp import web

    async def only_16(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=("ocpp1.6",))
        await ws.prepare(request)
        await ws.receive()
        return ws

    app = web.Application()
    app.router.add_get("/csms/{id}", only_16)
    from kit import serve_app

    runner, port = await serve_app(app)
    try:
        gateway = await gateway_factory(
            upstream__url=f"ws://127.0.0.1:{port}/csms", upstream__client=upstream_client
        )
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(f"{gateway.url}/ocpp/UP3", protocols=("ocpp2.0.1",))
        assert refused.value.status == 503
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("upstream_client", CLIENTS)
async def test_trailing_slash_paths_and_an_upstream_url_template(
    upstream_client: str,
    csms: Csms,
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
) -> None:
    # The id may sit anywhere in the upstream URL; here before a query string.
    template = f"{csms.url}/{{charge_point_id}}?site=north"
    gateway = await gateway_factory(upstream__url=template, upstream__client=upstream_client)
    ws = await client.ws_connect(f"{gateway.url}/ocpp/CP%2FSLASH/", protocols=("ocpp1.6",))
    link = await csms.next_link()
    assert link.charge_point_id == "CP/SLASH"  # decoded from the charge point's path
    await ws.send_str('[2,"h-1","Heartbeat",{}]')
    assert await link.next_frame() == b'[2,"h-1","Heartbeat",{}]'
    await ws.close()


def test_upstream_url_placeholders_are_checked(tmp_path: Any) -> None:
    from ocpp_gateway.preflight import check_config
    from ocpp_gateway.transports.websocket import upstream_url

    assert upstream_url("ws://h/ocpp/", "A B") == "ws://h/ocpp/A%20B"
    assert upstream_url("ws://h/{charge_point_id}/x", "A/B") == "ws://h/A%2FB/x"
    path = tmp_path / "gateway.toml"
    path.write_text('[upstream]\nurl = "ws://h/{cp}"\n', encoding="utf-8")
    assert "upstream.url: the only placeholder is {charge_point_id}" in check_config(str(path))
