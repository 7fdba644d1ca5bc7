"""A charge point that gives up during the handshake (RFC 6455 §4.1: the client may close at any
time) is a normal event on flaky networks: logged at debug level and counted, no traceback."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from ._support import WAIT, GatewayFactory, scrape


class GatedCsms:
    """An upstream that accepts a charge point only when the test says so."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.closed = asyncio.Event()
        self.url = ""

    async def handler(self, request: web.Request) -> web.StreamResponse:
        self.arrived.set()
        await self.release.wait()
        ws = web.WebSocketResponse(protocols=("ocpp1.6",))
        await ws.prepare(request)
        try:
            async for _msg in ws:
                pass
        finally:
            self.closed.set()
        return ws


@pytest.fixture
async def gated() -> AsyncIterator[GatedCsms]:
    peer = GatedCsms()
    app = web.Application()
    app.router.add_get("/csms/{id}", peer.handler)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    peer.url = f"ws://127.0.0.1:{port}/csms"
    yield peer
    peer.release.set()
    await runner.cleanup()


async def test_client_leaving_during_the_handshake_is_quiet(
    gated: GatedCsms,
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = await gateway_factory(upstream__url=gated.url)
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ocpp/GONE HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    await asyncio.wait_for(gated.arrived.wait(), WAIT)
    writer.close()  # the charge point gives up while the gateway waits for the CSMS
    await writer.wait_closed()
    assert await asyncio.wait_for(reader.read(), WAIT) == b""
    gated.release.set()
    # The gateway closes the upstream link it opened for nothing.
    await asyncio.wait_for(gated.closed.wait(), WAIT)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [(r.name, r.getMessage()) for r in errors]
    assert gateway.connections == 0
    metrics = await scrape(client, gateway)
    assert metrics['ocpp_gateway_handshakes_refused_total{reason="client_gone"}'] == 1.0
