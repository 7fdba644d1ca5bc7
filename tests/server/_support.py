"""Helpers of the server tests: a tiny recording CSMS on aiohttp, frame and metric helpers."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from kit import WAIT
from ocpp_gateway.server import RunningGateway


@dataclass
class CsmsLink:
    """One charge point as the CSMS sees it."""

    charge_point_id: str
    protocol: str | None
    ws: web.WebSocketResponse
    frames: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    authorization: str | None = None

    async def next_frame(self) -> bytes:
        """The next frame the CSMS received from this charge point."""
        return await asyncio.wait_for(self.frames.get(), WAIT)

    async def send(self, frame: bytes) -> None:
        """Send a text frame to the charge point, bytes unchanged."""
        await self.ws.send_frame(frame, aiohttp.WSMsgType.TEXT)


def _empty_answer(charge_point_id: str, payload: Any) -> Any:
    """The answer of an action the test gave none for: an empty payload."""
    return {}


@dataclass
class Csms:
    """A recording CSMS: answers CALLs automatically (unless `auto_answer` is False) with
    `answers[action]`, records every frame, and lets a test send frames of its own."""

    url: str = ""
    auto_answer: bool = True
    refuse_status: int | None = None
    answers: dict[str, Callable[[str, Any], Any]] = field(default_factory=dict)
    links: dict[str, CsmsLink] = field(default_factory=dict)
    connected: asyncio.Queue[CsmsLink] = field(default_factory=asyncio.Queue)
    handshakes: int = 0

    async def handler(self, request: web.Request) -> web.StreamResponse:
        self.handshakes += 1
        if self.refuse_status is not None:
            return web.Response(status=self.refuse_status)
        ws = web.WebSocketResponse(protocols=("ocpp1.6", "ocpp2.0.1", "ocpp2.1"), decode_text=False)
        await ws.prepare(request)
        link = CsmsLink(
            request.match_info["id"],
            ws.ws_protocol,
            ws,
            authorization=request.headers.get("Authorization"),
        )
        self.links[link.charge_point_id] = link
        self.connected.put_nowait(link)
        try:
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                data: bytes = msg.data
                link.frames.put_nowait(data)
                message = json.loads(data)
                if self.auto_answer and message[0] == 2:
                    answer = self.answers.get(message[2], _empty_answer)
                    body = answer(link.charge_point_id, message[3])
                    await ws.send_frame(
                        json.dumps([3, message[1], body]).encode(), aiohttp.WSMsgType.TEXT
                    )
        finally:
            link.closed.set()
        return ws

    async def next_link(self) -> CsmsLink:
        """The next charge point that connected."""
        return await asyncio.wait_for(self.connected.get(), WAIT)


def heartbeat_answer(_cp: str, _payload: Any) -> Any:
    return {"currentTime": "2025-01-01T00:00:00Z"}


def boot_answer(charge_point_id: str, _payload: Any) -> Any:
    # The interval carries the charge point's number so that each one can check its own answer.
    digits = "".join(ch for ch in charge_point_id if ch.isdigit()) or "0"
    return {"status": "Accepted", "currentTime": "2025-01-01T00:00:00Z", "interval": int(digits)}


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


async def receive_frame(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    """The next text frame a charge point received, as bytes; fails on close or timeout."""
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg!r}"
    data = msg.data
    return data if isinstance(data, bytes) else data.encode()


async def scrape(client: aiohttp.ClientSession, gateway: RunningGateway) -> dict[str, float]:
    """Scrape /metrics and flatten it: 'name{k="v",...}' (labels sorted) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    http = gateway.url.replace("ws://", "http://", 1)
    async with client.get(f"{http}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    flat: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            flat[f"{sample.name}{{{labels}}}"] = sample.value
    return flat


class Recorder:
    """A routing plugin that only records: lets a test await a charge point's departure
    (`on_disconnect` runs after the connection's metrics are counted). Enable it with
    `plugins__enabled=[RECORDER]`; the instance is `gateway.runtime.chain.plugins[i]`.
    It also queues the UniqueId of every CALL the chain is asked about, just before the gateway
    relays it."""

    def __init__(self) -> None:
        self.left: asyncio.Queue[str] = asyncio.Queue()
        self.calls: asyncio.Queue[str | None] = asyncio.Queue()

    def on_connect(self, info: Any) -> Any:
        from ocpp_gateway.routing import CONTINUE

        return CONTINUE

    def on_call(self, message: Any) -> Any:
        from ocpp_gateway.routing import CONTINUE

        self.calls.put_nowait(message.unique_id)
        return CONTINUE

    def on_call_result(self, message: Any) -> Any:
        from ocpp_gateway.routing import CONTINUE

        return CONTINUE

    def on_disconnect(self, info: Any) -> None:
        self.left.put_nowait(info.charge_point_id)

    async def departure(self) -> str:
        """The id of the next charge point whose connection ended."""
        return await asyncio.wait_for(self.left.get(), WAIT)


class BrokenReply(Recorder):
    """A faulty plugin: answers every CSMS call with a payload that cannot be serialised."""

    def on_call(self, message: Any) -> Any:
        from ocpp_gateway.routing import CONTINUE, Reply

        if message.direction == "csms_to_cp":
            return Reply({"status": {1, 2}})
        return CONTINUE


RECORDER = f"{__name__}:Recorder"
BROKEN_REPLY = f"{__name__}:BrokenReply"


def recorder(gateway: RunningGateway) -> Recorder:
    """The Recorder (or subclass) plugin of a gateway."""
    chain = gateway.runtime.chain
    assert chain is not None
    plugin = next(p for p in chain.plugins if isinstance(p, Recorder))
    return plugin


async def raw_upgrade(
    gateway: RunningGateway, charge_point_id: str, sock: Any = None, *, answer: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A charge point socket that completes the upgrade and then never reads nor answers pings
    (a dead or half-open charger). With `answer=False`, only the request is sent."""
    import base64
    import os

    if sock is None:
        reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    else:
        reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ocpp/{charge_point_id} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    if answer:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


class QueueLink:
    """An in-memory backend link a test drives: what the gateway sends lands in `sent`, what
    the test puts in `incoming` the gateway receives; None there means the backend is gone."""

    def __init__(self, charge_point_id: str, version: str) -> None:
        self.charge_point_id = charge_point_id
        self.version = version  # the backend takes the charge point's first version
        self.sent: asyncio.Queue[bytes] = asyncio.Queue()
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False

    async def send(self, frame: bytes) -> None:
        from ocpp_gateway.errors import TransportUnavailable

        if self.closed:
            raise TransportUnavailable("link closed")
        self.sent.put_nowait(frame)

    async def recv(self) -> bytes | None:
        if self.closed:
            return None
        return await self.incoming.get()

    async def close(self) -> None:
        self.closed = True
        self.incoming.put_nowait(None)

    async def next_sent(self) -> bytes:
        """The next frame the gateway sent to this backend."""
        return await asyncio.wait_for(self.sent.get(), WAIT)


class _WakingIncoming:
    """What a test puts in a `WakingQueueLink` (the `put_nowait` of `QueueLink.incoming`)."""

    def __init__(self, link: WakingQueueLink) -> None:
        self.frames: deque[bytes | None] = deque()
        self._link = link

    def put_nowait(self, frame: bytes | None) -> None:
        self.frames.append(frame)
        self._link.woken()


class WakingQueueLink(QueueLink):
    """A `QueueLink` that is also a `WakingLink`, as the broker links are: the gateway parks
    its pump on it (`set_wake`) instead of keeping a task waiting in `recv`."""

    def __init__(self, charge_point_id: str, version: str) -> None:
        super().__init__(charge_point_id, version)
        self.waking = _WakingIncoming(self)
        self.incoming = self.waking  # type: ignore[assignment]  # put_nowait is all tests use
        self.wake: Callable[[], object] | None = None  # the parked pump, while one is
        self.wakes = 0  # times a parked pump was woken

    def recv_ready(self) -> bool:
        return bool(self.waking.frames) or self.closed

    def set_wake(self, wake: Callable[[], object] | None) -> None:
        self.wake = wake
        if wake is not None and self.recv_ready():
            self.woken()

    def woken(self) -> None:
        wake, self.wake = self.wake, None
        if wake is not None:
            self.wakes += 1
            wake()

    async def recv(self) -> bytes | None:
        frames = self.waking.frames
        assert frames or self.closed, "a parked pump is only woken with something to read"
        return frames.popleft() if frames else None

    async def close(self) -> None:
        self.closed = True
        self.woken()


class QueueTransport:
    """A transport of `QueueLink`s (`WakingQueueLink`s with `waking`), given to
    `start_gateway(transports=...)`."""

    def __init__(self, name: str = "default", waking: bool = False) -> None:
        self.name = name
        self.links: dict[str, QueueLink] = {}
        self.opened: asyncio.Queue[QueueLink] = asyncio.Queue()
        self.refuse = False
        self.waking = waking

    async def open(self, charge_point_id: str, versions: tuple[str, ...]) -> QueueLink:
        from ocpp_gateway.errors import TransportUnavailable

        if self.refuse:
            raise TransportUnavailable("refused by the test")
        kind = WakingQueueLink if self.waking else QueueLink
        link = self.links[charge_point_id] = kind(charge_point_id, versions[0])
        self.opened.put_nowait(link)
        return link

    async def next_link(self) -> QueueLink:
        """The next link the gateway opened."""
        return await asyncio.wait_for(self.opened.get(), WAIT)

    async def close(self) -> None:
        return None
