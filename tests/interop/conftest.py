"""Real peers for the interop tests: `ocpp` library charge points and CSMS over `websockets`,
raw `websockets` peers for bad frames, and a gateway in between (`start_gateway`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ocpp.v16
import ocpp.v16.call
import ocpp.v16.call_result
import ocpp.v21
import ocpp.v21.call
import ocpp.v21.call_result
import ocpp.v201
import ocpp.v201.call
import ocpp.v201.call_result
import pytest
import websockets
from ocpp.charge_point import camel_to_snake_case
from ocpp.routing import on
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve

from kit import WAIT, listening_port
from ocpp_gateway.config import load_config
from ocpp_gateway.server import RunningGateway, start_gateway

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
VERSIONS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")

_LIBRARY = {
    "ocpp1.6": (ocpp.v16.ChargePoint, ocpp.v16.call, ocpp.v16.call_result),
    "ocpp2.0.1": (ocpp.v201.ChargePoint, ocpp.v201.call, ocpp.v201.call_result),
    "ocpp2.1": (ocpp.v21.ChargePoint, ocpp.v21.call, ocpp.v21.call_result),
}

Responder = Callable[[str, str, dict[str, Any]], dict[str, Any]]


def fixtures(version: str) -> dict[str, dict[str, Any]]:
    """The shared valid payloads: {action: {"request": ..., "response": ...}}."""
    data: dict[str, dict[str, Any]] = json.loads(
        (FIXTURES / f"{version}.json").read_text(encoding="utf-8")
    )
    return data


def request(version: str, action: str, payload: dict[str, Any]) -> Any:
    """The `ocpp` library's call dataclass of `action` carrying `payload` (camelCase JSON)."""
    return getattr(_LIBRARY[version][1], action)(**camel_to_snake_case(payload))


def result(version: str, action: str, payload: dict[str, Any]) -> Any:
    """The `ocpp` library's call_result dataclass of `action` carrying `payload`."""
    return getattr(_LIBRARY[version][2], action)(**camel_to_snake_case(payload))


def fixture_responder(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Answer every call with the shared fixture response of its action."""
    response: dict[str, Any] = fixtures(version)[action]["response"]
    return response


class Recorder:
    """A websockets connection that keeps every text frame sent and received, in order."""

    def __init__(self, connection: ClientConnection | ServerConnection) -> None:
        self.connection = connection
        self.sent: list[str] = []
        self.received: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)
        await self.connection.send(message)

    async def recv(self) -> str:
        message = await self.connection.recv()
        text = message if isinstance(message, str) else message.decode()
        self.received.append(text)
        return text


def library_class(version: str, responder: Responder) -> type[Any]:
    """An `ocpp` library ChargePoint subclass with an `@on` handler for every action of the
    version (either role: a CSMS and a charge point get the same class). Each handler records
    its call in `self.handled` and answers with `responder(version, action, kwargs)`."""
    base = _LIBRARY[version][0]
    attrs: dict[str, Any] = {}
    for action, pair in fixtures(version).items():
        if "response" not in pair:
            continue

        def make(action: str) -> Any:
            async def handle(self: Any, **kwargs: Any) -> Any:
                self.handled.append((action, kwargs))
                return result(version, action, responder(version, action, kwargs))

            # The library routes by attribute name, recorded from the function's __name__.
            handle.__name__ = handle.__qualname__ = f"on_{action}"
            return on(action)(handle)

        attrs[f"on_{action}"] = make(action)
    return type(f"Peer_{version.replace('.', '_')}", (base,), attrs)


@dataclass
class Peer:
    """One `ocpp` library ChargePoint (either role) on a recorded connection."""

    charge_point: Any
    recorder: Recorder
    task: asyncio.Task[None]

    @property
    def handled(self) -> list[tuple[str, dict[str, Any]]]:
        result: list[tuple[str, dict[str, Any]]] = self.charge_point.handled
        return result

    async def call(self, version: str, action: str, payload: dict[str, Any]) -> Any:
        """Send a CALL with the library; a CALLERROR raises the library's exception."""
        return await asyncio.wait_for(
            self.charge_point.call(request(version, action, payload), suppress=False), WAIT
        )


def _make_peer(version: str, charge_point_id: str, connection: Any, responder: Responder) -> Peer:
    recorder = Recorder(connection)
    charge_point = library_class(version, responder)(
        charge_point_id, recorder, response_timeout=WAIT
    )
    charge_point.handled = []

    async def run() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            await charge_point.start()

    return Peer(charge_point, recorder, asyncio.create_task(run()))


@dataclass
class LibraryCsms:
    """A CSMS made of `ocpp` library ChargePoints on a `websockets` server: one per charge point
    connection, keyed by the id at the end of the path."""

    url: str = ""
    responder: Responder = fixture_responder
    peers: dict[str, Peer] = field(default_factory=dict)
    connections: dict[str, ServerConnection] = field(default_factory=dict)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handler(self, connection: ServerConnection) -> None:
        charge_point_id = connection.request.path.rsplit("/", 1)[-1] if connection.request else ""
        version = connection.subprotocol or "ocpp1.6"
        peer = _make_peer(version, charge_point_id, connection, self.responder)
        self.peers[charge_point_id] = peer
        self.connections[charge_point_id] = connection
        async with self.arrived:
            self.arrived.notify_all()
        await peer.task

    async def peer(self, charge_point_id: str) -> Peer:
        """The CSMS-side peer of a charge point, once its upstream connection arrived."""
        async with self.arrived:
            await asyncio.wait_for(
                self.arrived.wait_for(lambda: charge_point_id in self.peers), WAIT
            )
        return self.peers[charge_point_id]


@dataclass
class RawCsms:
    """A CSMS that hands each raw upstream connection to the test."""

    url: str = ""
    connections: asyncio.Queue[tuple[str, ServerConnection]] = field(default_factory=asyncio.Queue)
    closed: dict[str, asyncio.Event] = field(default_factory=dict)

    async def handler(self, connection: ServerConnection) -> None:
        charge_point_id = connection.request.path.rsplit("/", 1)[-1] if connection.request else ""
        self.closed[charge_point_id] = asyncio.Event()
        await self.connections.put((charge_point_id, connection))
        await connection.wait_closed()
        self.closed[charge_point_id].set()

    async def next(self) -> tuple[str, ServerConnection]:
        return await asyncio.wait_for(self.connections.get(), WAIT)


@contextlib.asynccontextmanager
async def _serving(
    handler: Callable[[ServerConnection], Any], subprotocols: tuple[str, ...] = VERSIONS
) -> AsyncIterator[str]:
    server: Server = await serve(handler, "127.0.0.1", 0, subprotocols=list(subprotocols))  # type: ignore[arg-type]
    port = listening_port(server)
    try:
        yield f"ws://127.0.0.1:{port}/csms"
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)


@contextlib.asynccontextmanager
async def running_gateway(upstream: str | None, **overrides: Any) -> AsyncIterator[RunningGateway]:
    """A gateway on 127.0.0.1 (any port) relaying to `upstream`, stopped afterwards."""
    config = load_config(
        None, {}, {"host": "127.0.0.1", "port": 0, "upstream.url": upstream, **overrides}
    )
    gateway = await start_gateway(config)
    try:
        yield gateway
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0.5), WAIT)


@dataclass
class Interop:
    """A library CSMS, a gateway relaying to it, and a way to connect library charge points."""

    csms: LibraryCsms
    gateway: RunningGateway
    clients: list[Peer] = field(default_factory=list)

    async def connect(
        self, charge_point_id: str, version: str, responder: Responder = fixture_responder
    ) -> Peer:
        """Connect an `ocpp` library charge point through the gateway."""
        connection = await asyncio.wait_for(
            connect(
                f"{self.gateway.url}/ocpp/{charge_point_id}",
                subprotocols=[version],  # type: ignore[list-item]
            ),
            WAIT,
        )
        assert connection.subprotocol == version
        peer = _make_peer(version, charge_point_id, connection, responder)
        self.clients.append(peer)
        return peer


@pytest.fixture
async def library_csms() -> AsyncIterator[LibraryCsms]:
    csms = LibraryCsms()
    async with _serving(csms.handler) as url:
        csms.url = url
        yield csms


@pytest.fixture
async def interop(library_csms: LibraryCsms) -> AsyncIterator[Interop]:
    async with running_gateway(library_csms.url) as gateway:
        setup = Interop(library_csms, gateway)
        try:
            yield setup
        finally:
            for peer in setup.clients:
                await peer.recorder.connection.close()
                peer.task.cancel()
            await asyncio.gather(*(p.task for p in setup.clients), return_exceptions=True)


@pytest.fixture
async def raw_csms() -> AsyncIterator[RawCsms]:
    csms = RawCsms()
    async with _serving(csms.handler) as url:
        csms.url = url
        yield csms
