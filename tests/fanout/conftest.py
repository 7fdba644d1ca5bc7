"""Real peers for the second backends' tests: `ocpp` library CSMS servers (primary, controller,
observer, candidate) and a gateway with `[backends]` between them and library charge points."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from websockets.asyncio.client import connect

from interop.conftest import (
    LibraryCsms,
    Peer,
    Responder,
    _make_peer,
    _serving,
    fixture_responder,
)
from kit import WAIT
from ocpp_gateway.config import load_config
from ocpp_gateway.server import RunningGateway, start_gateway

__all__ = ["WAIT", "Fleet", "csms_server", "gateway_with"]


@contextlib.asynccontextmanager
async def csms_server(responder: Responder = fixture_responder) -> AsyncIterator[LibraryCsms]:
    """A library CSMS on loopback (any port)."""
    csms = LibraryCsms(responder=responder)
    async with _serving(csms.handler) as url:
        csms.url = url
        yield csms


@contextlib.asynccontextmanager
async def gateway_with(
    upstream: str | None, backends: Mapping[str, Mapping[str, Any]], **overrides: Any
) -> AsyncIterator[RunningGateway]:
    """A gateway on loopback relaying to `upstream` (the primary) with these `[backends]`."""
    config = load_config(
        None,
        {},
        {
            "host": "127.0.0.1",
            "port": 0,
            "upstream.url": upstream,
            "backends": backends,
            "security.message_rate": 0,
            **overrides,
        },
    )
    gateway = await start_gateway(config)
    try:
        yield gateway
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0.5), WAIT)


class Fleet:
    """Library charge points connected through a gateway, closed at the end."""

    def __init__(self, gateway: RunningGateway) -> None:
        self.gateway = gateway
        self.peers: list[Peer] = []

    async def connect(
        self, charge_point_id: str, version: str, responder: Responder = fixture_responder
    ) -> Peer:
        connection = await asyncio.wait_for(
            connect(f"{self.gateway.url}/ocpp/{charge_point_id}", subprotocols=[version]),  # type: ignore[list-item]
            WAIT,
        )
        peer = _make_peer(version, charge_point_id, connection, responder)
        self.peers.append(peer)
        return peer

    async def close(self) -> None:
        for peer in self.peers:
            await peer.recorder.connection.close()
            peer.task.cancel()
        await asyncio.gather(*(p.task for p in self.peers), return_exceptions=True)
