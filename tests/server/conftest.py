"""Fixtures of the server tests: a recording CSMS and gateways started in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kit import serve_app
from ocpp_gateway.config import load_config
from ocpp_gateway.server import RunningGateway, start_gateway

from ._support import Csms, GatewayFactory, boot_answer, heartbeat_answer


async def _serve_csms() -> AsyncIterator[Csms]:
    peer = Csms(answers={"Heartbeat": heartbeat_answer, "BootNotification": boot_answer})
    app = web.Application()
    app.router.add_get("/csms/{id}", peer.handler)
    runner, port = await serve_app(app)
    peer.url = f"ws://127.0.0.1:{port}/csms"
    yield peer
    for link in list(peer.links.values()):
        await link.ws.close()
    await runner.cleanup()


@pytest.fixture
async def csms() -> AsyncIterator[Csms]:
    """A running recording CSMS on a loopback port."""
    async for peer in _serve_csms():
        yield peer


@pytest.fixture
async def other_csms() -> AsyncIterator[Csms]:
    """A second recording CSMS (the target of a plugin's Forward)."""
    async for peer in _serve_csms():
        yield peer


@pytest.fixture
async def gateway_factory() -> AsyncIterator[GatewayFactory]:
    """Start gateways on loopback with config overrides (dotted keys); all stopped at the end."""
    started: list[RunningGateway] = []

    async def start(
        path: str | None = None, backends: Any = None, **overrides: Any
    ) -> RunningGateway:
        values = {"host": "127.0.0.1", "port": 0, "drain_timeout": 0.0}
        values.update({key.replace("__", "."): value for key, value in overrides.items()})
        config = load_config(path, env={}, overrides=values)
        gateway = await start_gateway(config, transports=backends)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop(0.0)


@pytest.fixture
async def relay(csms: Csms, gateway_factory: GatewayFactory) -> RunningGateway:
    """A gateway relaying to the recording CSMS."""
    return await gateway_factory(upstream__url=csms.url)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp client session for charge points and HTTP scrapes."""
    async with aiohttp.ClientSession() as session:
        yield session
