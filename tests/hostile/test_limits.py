"""Limits of the gateway against hostile peers: sizes after inflation, rates, idle sockets,
connection counts and malformed handshakes (RFC 6455 §4, §7.4.1 close codes)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from kit import WAIT, listening_port
from ocpp_gateway.config import UpstreamConfig
from ocpp_gateway.server import RunningGateway, start_gateway

from .conftest import Probe, gateway_config

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
        subprotocols=[Subprotocol("ocpp1.6")],
        compression="deflate",
    ) as ws:
        assert ws.protocol.extensions, "permessage-deflate must be negotiated"
        await ws.send(frame)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(WAIT):
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
        async with asyncio.timeout(WAIT):
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
    async with asyncio.timeout(WAIT):
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
        async with asyncio.timeout(WAIT):
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
        async with asyncio.timeout(WAIT):
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
            async with asyncio.timeout(WAIT):
                await ws.recv()
    assert gateway.connections == 0


async def test_slow_http_headers_are_cut_off(start: Start) -> None:
    """A slowloris peer (request head never finished) loses its socket after handshake_timeout."""
    gw = await start(handshake_timeout=0.3)
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    try:
        writer.write(b"GET /ocpp/SLOW HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        await writer.drain()
        async with asyncio.timeout(WAIT):
            rest = await reader.read()  # b"" once the gateway drops the socket
    finally:
        writer.close()
    assert rest == b""
    await still_serves(gw)


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one unmasked frame (server to client, RFC 6455 §5.2). Returns (opcode, payload)."""
    head = await reader.readexactly(2)
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    return head[0] & 0x0F, await reader.readexactly(size)


async def test_slow_reader_is_closed_not_buffered() -> None:
    """A charge point that stops reading while its CSMS sends: closed with 1008 once more than
    max_outbound_queue_bytes wait unwritten; the rest is not buffered for it."""
    await slow_reader_scenario()


async def slow_reader_scenario() -> None:
    """The slow-reader case on the running event loop (also run under uvloop)."""
    frame_bytes, frames = 256 * 1024, 48  # 12 MiB: far more than kernel buffers can hold
    csms_done = asyncio.Event()

    async def csms(ws: ServerConnection) -> None:
        assert ws.request is not None
        if not ws.request.path.endswith("/SLOW-READER"):  # an ordinary CSMS for still_serves
            async for message in ws:
                call = json.loads(message)
                await ws.send(json.dumps([3, call[1], {"currentTime": "2026-01-01T00:00:00Z"}]))
            return
        try:
            for i in range(frames):
                payload = {"vendorId": "v", "data": "x" * frame_bytes}
                await ws.send(json.dumps([2, f"c{i}", "DataTransfer", payload]))
            await ws.wait_closed()  # the gateway closes the upstream once the charge point is gone
        except ConnectionClosed:
            pass
        csms_done.set()

    async with serve(csms, "127.0.0.1", 0, subprotocols=["ocpp1.6"], max_size=None) as upstream:  # type: ignore[list-item]
        port = listening_port(upstream)
        gw = await start_gateway(
            dataclasses.replace(
                gateway_config(
                    max_outbound_queue_bytes=512 * 1024, slow_reader_grace=60.0, ping_interval=0
                ),
                upstream=UpstreamConfig(url=f"ws://127.0.0.1:{port}/ocpp"),
            )
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # no autotuning
        sock.connect((gw.host, gw.port))
        # A raw client: asyncio stops reading the socket once its buffer holds 128 KiB.
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            writer.write(
                b"GET /ocpp/SLOW-READER HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
            )
            async with asyncio.timeout(WAIT):
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 101")
                await csms_done.wait()
                received = 0
                while True:
                    opcode, payload = await read_frame(reader)
                    if opcode == 0x8:
                        break
                    received += 1
            assert int.from_bytes(payload[:2], "big") == 1008
            assert received < frames
            closed = gw.metrics.connections_closed.labels("slow_reader")._value.get()
            assert closed == 1
            await still_serves(gw)
        finally:
            writer.close()
            await gw.stop(drain_timeout=0)
