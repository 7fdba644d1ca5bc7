"""Client addresses behind balancers: PROXY protocol v1/v2 (HAProxy's specification) and
X-Forwarded-For, believed from trusted_proxies only, feeding the limits and the admin API."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

import aiohttp
import pytest

from kit import WAIT, poll
from ocpp_gateway.proxy import (
    V2_SIGNATURE,
    ProxyHeaderError,
    TrustedProxies,
    forwarded_client,
    header_length,
    parse_header,
)
from ocpp_gateway.server import RunningGateway

from ._support import GatewayFactory, raw_upgrade


def v2(command: int, family: int, body: bytes) -> bytes:
    """A v2 header: signature, version 2 + command, family + TCP, length, body."""
    return (
        V2_SIGNATURE
        + bytes([0x20 | command, (family << 4) | 0x1])
        + struct.pack("!H", len(body))
        + body
    )


def v2_inet(source: str, port: int) -> bytes:
    body = ipaddress.IPv4Address(source).packed + ipaddress.IPv4Address("10.0.0.1").packed
    return v2(0x1, 0x1, body + struct.pack("!HH", port, 9000))


def v2_inet6(source: str, port: int) -> bytes:
    body = ipaddress.IPv6Address(source).packed + ipaddress.IPv6Address("2001:db8::1").packed
    return v2(0x1, 0x2, body + struct.pack("!HH", port, 9000))


GOOD = [
    (b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 9000\r\n", ("203.0.113.7", 5555)),
    (b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 9000\r\n", ("2001:db8::7", 5555)),
    (b"PROXY UNKNOWN\r\n", None),
    (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None),
    (v2_inet("198.51.100.4", 40000), ("198.51.100.4", 40000)),
    (v2_inet6("2001:db8::9", 1), ("2001:db8::9", 1)),
    (v2(0x0, 0x0, b""), None),  # LOCAL: the balancer's own health check
    (v2(0x1, 0x1, v2_inet("192.0.2.1", 7)[16:] + b"\x03\x00\x04abcd"), ("192.0.2.1", 7)),  # TLV
]

BAD = [
    b"PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\n",  # a field short
    b"PROXY TCP4 2001:db8::7 10.0.0.1 5555 9000\r\n",  # family mismatch
    b"PROXY TCP4 203.0.113.300 10.0.0.1 5555 9000\r\n",  # not an address
    b"PROXY TCP4 203.0.113.7 10.0.0.1 05555 9000\r\n",  # leading zero
    b"PROXY TCP4 203.0.113.7 10.0.0.1 70000 9000\r\n",  # port range
    b"PROXY UDP4 203.0.113.7 10.0.0.1 5555 9000\r\n",  # protocol
    V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12),  # version 1 in a v2 header
    v2(0x2, 0x1, bytes(12)),  # unknown command
    v2(0x1, 0x1, bytes(4)),  # short address block
]


@pytest.mark.parametrize(("header", "client"), GOOD)
def test_valid_headers_parse(header: bytes, client: tuple[str, int] | None) -> None:
    assert header_length(header + b"GET / HTTP/1.1\r\n") == len(header)
    for cut in range(len(header)):  # a prefix asks for more bytes, or says how many in all
        assert header_length(header[:cut]) in (None, len(header))
    assert parse_header(header) == client


@pytest.mark.parametrize("header", BAD)
def test_malformed_headers_are_refused(header: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        length = header_length(header)
        assert length is not None
        parse_header(header[:length])


@pytest.mark.parametrize(
    "start",
    [b"GET /ocpp/x HTTP/1.1\r\n", b"\x16\x03\x01", b"PROXY" + b"X" * 200, b"\r\n\r\nX"],
)
def test_what_is_not_a_header_is_refused_early(start: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        header_length(start)


def test_x_forwarded_for_is_believed_from_trusted_peers_only() -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "::1"])
    assert forwarded_client(["198.51.100.1"], "10.1.1.1", trusted) == "198.51.100.1"
    assert forwarded_client(["198.51.100.1"], "192.0.2.9", trusted) == "192.0.2.9"
    # The right-most untrusted hop: a client cannot push its own value past the balancers.
    assert forwarded_client(["6.6.6.6, 198.51.100.1, 10.2.2.2"], "10.1.1.1", trusted) == (
        "198.51.100.1"
    )
    assert forwarded_client(["6.6.6.6", "198.51.100.1"], "::1", trusted) == "198.51.100.1"
    assert forwarded_client(["garbage, 10.2.2.2"], "10.1.1.1", trusted) == "10.2.2.2"
    assert forwarded_client([], "10.1.1.1", trusted) == "10.1.1.1"
    assert "::ffff:10.0.0.5" in trusted and "11.0.0.1" not in trusted


async def _proxied(
    gateway: RunningGateway, header: bytes, charge_point_id: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.create_connection((gateway.host, gateway.port))
    sock.sendall(header)
    sock.setblocking(False)
    return await raw_upgrade(gateway, charge_point_id, sock)


async def _remote(gateway: RunningGateway, charge_point_id: str) -> str | None:
    await poll(lambda: charge_point_id in gateway.registry.live, f"{charge_point_id} connected")
    return gateway.registry.live[charge_point_id].info.remote


async def test_a_trusted_balancer_gives_the_client_address_v1_and_v2(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(
        proxy_protocol=True,
        trusted_proxies=["127.0.0.0/8"],
        admin__port=0,
        admin__host="127.0.0.1",
        admin__token="proxied-admin-token-20",
    )
    _, w1 = await _proxied(gateway, b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 9000\r\n", "PX1")
    assert await _remote(gateway, "PX1") == "203.0.113.7"
    _, w2 = await _proxied(gateway, v2_inet6("2001:db8::9", 1234), "PX2")
    assert await _remote(gateway, "PX2") == "2001:db8::9"
    _, w3 = await _proxied(gateway, v2(0x0, 0x0, b""), "PX3")  # LOCAL: the peer stands
    assert await _remote(gateway, "PX3") == "127.0.0.1"
    async with client.get(
        f"{gateway.admin_url}/charge-points",
        headers={"Authorization": "Bearer proxied-admin-token-20"},
    ) as resp:
        remotes = {cp["id"]: cp["remote"] for cp in (await resp.json())["charge_points"]}
    assert remotes == {"PX1": "203.0.113.7", "PX2": "2001:db8::9", "PX3": "127.0.0.1"}
    for writer in (w1, w2, w3):
        writer.close()


async def test_per_address_limits_count_the_proxied_address(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(
        proxy_protocol=True, trusted_proxies=["127.0.0.1"], security__max_connections_per_ip=1
    )
    _, w1 = await _proxied(gateway, v2_inet("198.51.100.1", 1), "L1")
    _, w2 = await _proxied(gateway, v2_inet("198.51.100.2", 1), "L2")  # another client: fine
    sock = socket.create_connection((gateway.host, gateway.port))
    sock.sendall(v2_inet("198.51.100.1", 2))
    sock.setblocking(False)
    reader, w3 = await raw_upgrade(gateway, "L3", sock, answer=False)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    assert head.startswith(b"HTTP/1.1 429")
    for writer in (w1, w2, w3):
        writer.close()


async def _closed_without_answer(gateway: RunningGateway, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), WAIT)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


async def test_malformed_or_missing_headers_from_a_trusted_peer_are_closed(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(
        proxy_protocol=True, trusted_proxies=["127.0.0.1"], security__handshake_timeout=0.5
    )
    upgrade = b"GET /ocpp/M1 HTTP/1.1\r\nHost: x\r\n\r\n"
    for data in (*BAD, upgrade, b"PROXY TCP4 1.2.3.4"):  # the last one never completes
        assert await _closed_without_answer(gateway, data) == b"", data
    assert not gateway.registry.live


async def test_headers_from_untrusted_peers_are_not_believed(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(proxy_protocol=True, trusted_proxies=["10.0.0.0/8"])
    answer = await _closed_without_answer(
        gateway,
        b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 9000\r\nGET /ocpp/U1 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")  # garbage to aiohttp
    # Plain clients are served as they are.
    ws = await client.ws_connect(
        f"{gateway.url}/ocpp/U2",
        protocols=("ocpp1.6",),
        headers={"X-Forwarded-For": "203.0.113.7"},
    )
    assert await _remote(gateway, "U2") == "127.0.0.1"
    await ws.close()


async def test_x_forwarded_for_from_a_trusted_proxy_sets_the_address(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(trusted_proxies=["127.0.0.1/32"])
    ws = await client.ws_connect(
        f"{gateway.url}/ocpp/X1",
        protocols=("ocpp1.6",),
        headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.20"},
    )
    assert await _remote(gateway, "X1") == "198.51.100.20"
    await ws.close()
