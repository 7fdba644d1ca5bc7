"""Limits of the gateway against hostile peers: sizes after inflation, rates, idle sockets,
connection counts and malformed handshakes (RFC 6455 §4, §7.4.1 close codes)."""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ocpp_gateway.server import RunningGateway

from .conftest import RECV_TIMEOUT, Probe

Start = Callable[..., Awaitable[RunningGateway]]


async def still_serves(gw: RunningGateway, version: str = "ocpp1.6") -> None:
    probe = Probe(gw.url, version)
    seen = await probe.exchange(json.dumps([2, "alive", "Heartbeat", {}]))
    await probe.close()
    assert seen["close"] is None
    assert [a[:2] for a in seen["answers"]] == [[3, "alive"]]


async def test_oversized_frame_is_closed_with_1009(start: Start) -> None:
    gw = await start(max_message_bytes=64 * 1024)
    probe = Probe(gw.url, "ocpp1.6")
    big = json.dumps([2, "big", "DataTransfer", {"vendorId": "v", "data": "x" * 70_000}])
    seen = await probe.exchange(big)
    assert seen["close"] == 1009
    # Just under the limit is fine (answered, not closed).
    ok = json.dumps([2, "ok", "DataTransfer", {"vendorId": "v", "data": "x" * 60_000}])
    seen = await probe.exchange(ok)
    assert seen["close"] is None
    await probe.close()
    assert gw.metrics.connections_closed.labels("message_too_big")._value.get() >= 1
    await still_serves(gw)


async def test_deflate_bomb_is_measured_after_inflation(start: Start) -> None:
    """A frame of 4 MiB that compresses to a few KiB: the limit applies to the inflated size."""
    gw = await start(max_message_bytes=256 * 1024)
    frame = json.dumps([2, "bomb", "DataTransfer", {"vendorId": "v", "data": "0" * (4 << 20)}])
    assert len(zlib.compress(frame.encode())) < 16 * 1024  # what actually crosses the wire
    async with connect(
        f"{gw.url}/ocpp/BOMB",
        subprotocols=["ocpp1.6"],
        compression="deflate",  # type: ignore[list-item]
    ) as ws:
        assert ws.protocol.extensions, "permessage-deflate must be negotiated"
        await ws.send(frame)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(RECV_TIMEOUT):
                await ws.recv()
        assert ws.close_code == 1009
    await still_serves(gw)


async def test_rate_limit_close(start: Start) -> None:
    gw = await start(message_rate=1.0, message_burst=5, rate_excess="close")
    probe = Probe(gw.url, "ocpp1.6")
    ws = await probe.connect()
    for i in range(20):
        try:
            await ws.send(json.dumps([2, f"r{i}", "Heartbeat", {}]))
        except ConnectionClosed:
            break
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(RECV_TIMEOUT):
            while True:
                await ws.recv()
    assert ws.close_code == 1008
    assert sum(s.value for s in _samples(gw, "ocpp_gateway_rate_limited_total")) >= 1


async def test_rate_limit_callerror(start: Start) -> None:
    gw = await start(message_rate=1.0, message_burst=5, rate_excess="callerror")
    probe = Probe(gw.url, "ocpp1.6")
    ws = await probe.connect()
    for i in range(12):
        await ws.send(json.dumps([2, f"r{i}", "Heartbeat", {}]))
    answers: list[Any] = []
    async with asyncio.timeout(RECV_TIMEOUT):
        while len(answers) < 12:
            answers.append(json.loads(await ws.recv()))
    results = [a for a in answers if a[0] == 3]
    errors = [a for a in answers if a[0] == 4]
    assert 5 <= len(results) < 12
    assert len(results) + len(errors) == 12
    assert all(isinstance(e[2], str) for e in errors)
    await probe.close()


async def test_idle_connection_is_closed(start: Start) -> None:
    gw = await start(idle_timeout=0.5, ping_interval=0)
    async with connect(f"{gw.url}/ocpp/IDLE", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        async with asyncio.timeout(RECV_TIMEOUT):
            await ws.wait_closed()
    assert gw.connections == 0


async def test_connections_per_address(start: Start) -> None:
    gw = await start(max_connections_per_ip=2)
    url = f"{gw.url}/ocpp"
    async with (
        connect(f"{url}/A", subprotocols=["ocpp1.6"]),  # type: ignore[list-item]
        connect(f"{url}/B", subprotocols=["ocpp1.6"]),  # type: ignore[list-item]
    ):
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"{url}/C", subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
                pass
        assert info.value.response.status_code == 429
    await still_serves(gw)


def _samples(gw: RunningGateway, name: str) -> list[Any]:
    out = []
    for metric in gw.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                out.append(sample)
    return out


# Raw HTTP requests with what the gateway must answer (status, or "close" for a dropped socket).
RAW_HANDSHAKES: list[tuple[str, bytes, set[int]]] = [
    ("not-websocket", b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\n\r\n", {400, 426}),
    (
        "no-key",
        b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n",
        {400},
    ),
    (
        "unknown-version",
        b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n"
        b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n",
        {400, 426},
    ),
    (
        # aiohttp still accepts the hybi drafts 7 and 8, whose framing is RFC 6455's.
        "draft-version-8",
        b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"
        b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n",
        {101, 400, 426},
    ),
    (
        "bad-key",
        b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n",
        {400},
    ),
    ("no-id", b"GET /ocpp/ HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("nested-path", b"GET /ocpp/a/b HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("post", b"POST /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", {405}),
    (
        "garbage",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
        {400},
    ),
    ("http-0.9", b"GET /ocpp/CP-1\r\n\r\n", {400}),
    (
        "huge-header",
        b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        {400, 431},
    ),
    (
        "many-headers",
        b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 500 + b"\r\n",
        {101, 400, 431},
    ),
    ("long-id", b"GET /ocpp/" + b"i" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    ("huge-path", b"GET /ocpp/" + b"p" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {400, 414}),
    ("bad-percent", b"GET /ocpp/%ZZ HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404}),
    (
        "request-smuggling",
        b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        {400},
    ),
]


@pytest.mark.parametrize(
    ("name", "request_bytes", "statuses"), RAW_HANDSHAKES, ids=[r[0] for r in RAW_HANDSHAKES]
)
async def test_raw_handshakes(
    gateway: RunningGateway, name: str, request_bytes: bytes, statuses: set[int]
) -> None:
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    try:
        writer.write(request_bytes)
        await writer.drain()
        async with asyncio.timeout(RECV_TIMEOUT):
            status_line = await reader.readline()
    finally:
        writer.close()
    # aiohttp answers a request it cannot parse in HTTP/1.0 (or the version the client sent).
    assert re.match(rb"HTTP/\d\.\d \d{3} ", status_line), (name, status_line)
    assert int(status_line.split()[1]) in statuses, (name, status_line)
    await still_serves(gateway)


@pytest.mark.parametrize("offered", [[], ["ocpp9.9"], ["OCPP1.6J"], ["soap"]])
async def test_no_supported_subprotocol_is_closed_without_backend(
    gateway: RunningGateway, offered: list[str]
) -> None:
    """OCPP-J §3.1: without a common subprotocol, finish the handshake, then close."""
    async with connect(f"{gateway.url}/ocpp/NOPROTO", subprotocols=offered or None) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(RECV_TIMEOUT):
                await ws.recv()
    assert gateway.connections == 0
