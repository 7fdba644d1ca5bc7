"""A charge point that gives up during the handshake (RFC 6455 §4.1: the client may close at any
time) is a normal event on flaky networks: logged at debug level and counted, no traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from kit import WAIT, serve_app

from ._support import GatewayFactory, raw_upgrade, scrape


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
    runner, port = await serve_app(app)
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
    reader, writer = await raw_upgrade(gateway, "GONE", answer=False)
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
