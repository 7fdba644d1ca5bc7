"""TLS behind balancers and on the admin port: a PROXY header before the TLS handshake of a
profile 3 charge point (a TLS-passthrough balancer), and the admin listener over https."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from kit import WAIT
from ocpp_gateway.config import load_config
from ocpp_gateway.server import RunningGateway, start_gateway

from .conftest import Pki, client_ssl_context


@pytest.fixture
async def gateways() -> AsyncIterator[list[RunningGateway]]:
    started: list[RunningGateway] = []
    yield started
    for gateway in started:
        await gateway.stop(0.0)


async def _start(started: list[RunningGateway], **overrides: Any) -> RunningGateway:
    values = {"host": "127.0.0.1", "port": 0, "drain_timeout": 0.0, **overrides}
    gateway = await start_gateway(load_config(None, env={}, overrides=values))
    started.append(gateway)
    return gateway


async def _proxied_mutual_tls(pki: Pki) -> str | None:
    started: list[RunningGateway] = []
    try:
        gateway = await _start(
            started,
            proxy_protocol=True,
            trusted_proxies=["127.0.0.1"],
            **{
                "security.tls_cert": str(pki.server_cert),
                "security.tls_key": str(pki.server_key),
                "security.client_ca": str(pki.ca_cert),
            },
        )
        sock = socket.create_connection((gateway.host, gateway.port))
        sock.sendall(b"PROXY TCP4 203.0.113.50 10.0.0.1 40000 443\r\n")
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(
            sock=sock,
            ssl=client_ssl_context(pki, pki.client("CP-TLS")),
            server_hostname="localhost",
        )
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /ocpp/CP-TLS HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert head.startswith(b"HTTP/1.1 101"), head
        deadline = asyncio.get_running_loop().time() + WAIT
        while "CP-TLS" not in gateway.registry.live:
            assert asyncio.get_running_loop().time() < deadline, "CP-TLS connected"
            await asyncio.sleep(0.01)
        writer.close()
        return gateway.registry.live["CP-TLS"].info.remote
    finally:
        for gateway in started:
            await gateway.stop(0.0)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_proxy_header_before_mutual_tls_gives_the_client_address(pki: Pki, loop: str) -> None:
    # serve runs on uvloop, whose transports differ from asyncio's: both loops are tested.
    import uvloop

    run = uvloop.run if loop == "uvloop" else asyncio.run
    assert run(_proxied_mutual_tls(pki)) == "203.0.113.50"


async def test_the_admin_listener_serves_https(gateways: list[RunningGateway], pki: Pki) -> None:
    gateway = await _start(
        gateways,
        **{
            "admin.port": 0,
            "admin.host": "127.0.0.1",
            "admin.tls_cert": str(pki.server_cert),
            "admin.tls_key": str(pki.server_key),
        },
    )
    assert gateway.admin_url is not None and gateway.admin_url.startswith("https://")
    url = gateway.admin_url.replace("127.0.0.1", "localhost") + "/healthz"
    async with (
        aiohttp.ClientSession() as client,
        client.get(url, ssl=client_ssl_context(pki)) as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"
    with pytest.raises(aiohttp.ClientError):
        async with aiohttp.ClientSession() as client:
            await client.get(gateway.admin_url.replace("https", "http", 1) + "/healthz")


async def _header_with_what_follows(gateway: RunningGateway, index: int, pki: Pki | None) -> bytes:
    """One connection writing its PROXY header and its first bytes (the request, or the TLS
    ClientHello) in one write, as balancers do; returns the answer to `GET /healthz`."""
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    header = f"PROXY TCP4 198.51.{index // 250}.{index % 250 + 1} 10.0.0.1 {1024 + index} 9000\r\n"
    request = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    try:
        if pki is None:
            writer.write(header.encode() + request)
            return await asyncio.wait_for(reader.read(), WAIT)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_ssl_context(pki).wrap_bio(incoming, outgoing, server_hostname="localhost")
        first = True
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pending = outgoing.read()
                    writer.write((header.encode() if first else b"") + pending)
                    first = False
                    data = await reader.read(65536)
                    assert data, "closed during the handshake"
                    incoming.write(data)
            tls.write(request)
            writer.write(outgoing.read())
            answer = b""
            while True:
                try:
                    chunk = tls.read(65536)
                except ssl.SSLWantReadError:
                    data = await reader.read(65536)
                    if not data:
                        break
                    incoming.write(data)
                    continue
                except ssl.SSLZeroReturnError:
                    break
                if not chunk:
                    break
                answer += chunk
                if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                    break
            return answer
    finally:
        writer.close()


async def _many_at_once(pki: Pki, tls: bool) -> int:
    started: list[RunningGateway] = []
    try:
        extra = (
            {"security.tls_cert": str(pki.server_cert), "security.tls_key": str(pki.server_key)}
            if tls
            else {}
        )
        gateway = await _start(started, proxy_protocol=True, trusted_proxies=["127.0.0.1"], **extra)
        answers: list[bytes] = []
        for batch in range(5 if tls else 10):
            answers += await asyncio.gather(
                *(
                    _header_with_what_follows(gateway, batch * 100 + i, pki if tls else None)
                    for i in range(100)
                )
            )
        return sum(not answer.startswith(b"HTTP/1.1 200") for answer in answers)
    finally:
        for gateway in started:
            await gateway.stop(0.0)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_header_arriving_with_what_follows_is_read_whoever_reads_it(
    pki: Pki, loop: str, tls: bool
) -> None:
    """Balancers write the header and the connection's first bytes at once; uvloop may read
    them through the transport before the header reader has paused it. Every such connection
    is served (about 1 % were dropped as 'data before the header')."""
    import uvloop

    run = uvloop.run if loop == "uvloop" else asyncio.run
    assert run(_many_at_once(pki, tls)) == 0
