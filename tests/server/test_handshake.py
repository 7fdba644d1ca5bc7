"""Handshake rules: identity path, subprotocol negotiation (odd headers, none matching)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sys
from pathlib import Path

import aiohttp
import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from kit import WAIT
from ocpp_gateway.server import RunningGateway, negotiate_subprotocol

from ._support import Csms, GatewayFactory, receive_frame, scrape


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["ocpp1.6"], "ocpp1.6"),
        ([", ocpp2.0.1"], "ocpp2.0.1"),
        (["  OCPP1.6  "], "OCPP1.6"),
        (["foo,, ocpp2.1 ,ocpp1.6"], "ocpp2.1"),
        (["foo", "ocpp1.6"], "ocpp1.6"),
        (["foo, bar"], None),
        ([""], None),
        ([], None),
    ],
)
def test_negotiate_subprotocol_is_tolerant(values: list[str], expected: str | None) -> None:
    assert negotiate_subprotocol(values) == expected


async def raw_handshake(
    client: aiohttp.ClientSession, gateway: RunningGateway, path: str, protocols: list[str]
) -> tuple[int, str | None]:
    """Send a hand-made upgrade request; return (status, Sec-WebSocket-Protocol answered)."""
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode()),
        *(("Sec-WebSocket-Protocol", value) for value in protocols),
    ]
    http = gateway.url.replace("ws://", "http://", 1)
    async with client.get(f"{http}{path}", headers=headers) as response:
        return response.status, response.headers.get("Sec-WebSocket-Protocol")


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ([", ocpp1.6"], "ocpp1.6"),
        (["OCPP2.0.1"], "OCPP2.0.1"),
        (["chat", "ocpp2.1"], "ocpp2.1"),
        (["  ocpp2.0.1 ,ocpp1.6"], "ocpp2.0.1"),
    ],
)
async def test_odd_subprotocol_headers_are_accepted(
    relay: RunningGateway,
    csms: Csms,
    client: aiohttp.ClientSession,
    offered: list[str],
    answered: str,
) -> None:
    status, protocol = await raw_handshake(client, relay, "/ocpp/ODD1", offered)
    assert status == 101
    assert protocol == answered
    link = await csms.next_link()
    assert link.protocol == answered.lower()


async def test_no_matching_subprotocol_completes_then_closes(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    # RFC 6455 §4.2.2 / OCPP-J §3.1.2: answer without a subprotocol, then close.
    async with websockets.connect(
        f"{relay.url}/ocpp/NOPROTO", subprotocols=[Subprotocol("mqtt")]
    ) as ws:
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), WAIT)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1002
    assert csms.handshakes == 0
    metrics = await scrape(client, relay)
    assert metrics['ocpp_gateway_handshakes_refused_total{reason="subprotocol"}'] == 1.0


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ocpp/" + "A" * 49, 400),
        ("/ocpp/CP%3A1", 400),
        ("/ocpp/CP:1", 400),
        ("/ocpp/", 404),
        ("/ocpp/a/b", 404),
        ("/elsewhere/CP1", 404),
    ],
)
async def test_bad_identity_paths_are_refused_before_the_upgrade(
    relay: RunningGateway,
    csms: Csms,
    client: aiohttp.ClientSession,
    path: str,
    status: int,
) -> None:
    got, _ = await raw_handshake(client, relay, path, ["ocpp1.6"])
    assert got == status
    assert csms.handshakes == 0


@pytest.mark.parametrize("path", ["/elsewhere/CP1", "/", "/ocpp"])
async def test_a_path_outside_the_endpoints_is_counted_and_logged(
    relay: RunningGateway,
    csms: Csms,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    path: str,
) -> None:
    # A charger configured with a wrong URL shows in the metrics and the log.
    with caplog.at_level(logging.INFO, logger="ocpp_gateway"):
        async with client.get(f"{relay.url}{path}") as resp:
            assert resp.status == 404
            assert await resp.text() == "not found"
    metrics = await scrape(client, relay)
    assert metrics['ocpp_gateway_handshakes_refused_total{reason="bad_path"}'] == 1.0
    refusals = [r for r in caplog.records if r.getMessage() == "handshake refused"]
    assert [getattr(r, "detail", "") for r in refusals] == [f"no endpoint at {path!r}"]
    assert csms.handshakes == 0


async def test_identity_of_48_characters_is_accepted(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    ident = "B" * 48
    ws = await client.ws_connect(f"{relay.url}/ocpp/{ident}", protocols=("ocpp1.6",))
    assert (await csms.next_link()).charge_point_id == ident
    await ws.close()


async def test_permessage_deflate_is_offered(relay: RunningGateway, csms: Csms) -> None:
    async with websockets.connect(
        f"{relay.url}/ocpp/DEFLATE", subprotocols=[Subprotocol("ocpp1.6")]
    ) as ws:
        extensions = [ext.name for ext in ws.protocol.extensions]
        assert "permessage-deflate" in extensions
        await ws.send('[2,"z-1","Heartbeat",{}]')
        assert await asyncio.wait_for(ws.recv(), WAIT) == (
            '[3, "z-1", {"currentTime": "2025-01-01T00:00:00Z"}]'
        )


async def test_second_connection_with_a_live_identity_is_refused(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    # websockets answers pings in the background, like a charger's WebSocket stack.
    async with websockets.connect(
        f"{relay.url}/ocpp/TWIN", subprotocols=[Subprotocol("ocpp1.6")]
    ) as first:
        await csms.next_link()
        # The live one answers the ping and the newcomer is not authenticated: refused.
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect(f"{relay.url}/ocpp/TWIN", protocols=("ocpp1.6",))
        assert info.value.status == 409
        await first.send('[2,"still-1","Heartbeat",{}]')
        assert '"still-1"' in await asyncio.wait_for(first.recv(), WAIT)
    metrics = await scrape(client, relay)
    assert metrics['ocpp_gateway_takeovers_total{outcome="refused"}'] == 1.0


async def test_unresponsive_live_connection_is_replaced(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(upstream__url=csms.url, security__takeover_ping_timeout=0.2)
    # An aiohttp client that never reads never answers pings: a dead socket.
    stale = await client.ws_connect(f"{gateway.url}/ocpp/GHOST", protocols=("ocpp1.6",))
    await csms.next_link()
    fresh = await client.ws_connect(f"{gateway.url}/ocpp/GHOST", protocols=("ocpp1.6",))
    assert (await csms.next_link()).charge_point_id == "GHOST"
    await fresh.send_str('[2,"new-1","Heartbeat",{}]')
    assert b'"new-1"' in await receive_frame(fresh)
    metrics = await scrape(client, gateway)
    assert metrics['ocpp_gateway_takeovers_total{outcome="replaced_dead"}'] == 1.0
    await stale.close()
    await fresh.close()


async def test_draining_gateway_refuses_new_handshakes(
    relay: RunningGateway, client: aiohttp.ClientSession
) -> None:
    await relay.stop(0.0)
    with pytest.raises(aiohttp.ClientError):
        await client.ws_connect(f"{relay.url}/ocpp/LATE", protocols=("ocpp1.6",))


async def test_concurrent_newcomers_never_displace_a_responsive_connection(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    """DESIGN "Rules that keep data safe": an unauthenticated newcomer never displaces a live
    connection. Several newcomers at once share one ping, so each sees the live one's pong."""
    async with websockets.connect(
        f"{relay.url}/ocpp/TWINS", subprotocols=[Subprotocol("ocpp1.6")]
    ) as first:
        await csms.next_link()
        outcomes = await asyncio.gather(
            *(
                client.ws_connect(f"{relay.url}/ocpp/TWINS", protocols=("ocpp1.6",))
                for _ in range(3)
            ),
            return_exceptions=True,
        )
        statuses = [getattr(o, "status", o) for o in outcomes]
        assert statuses == [409, 409, 409], outcomes
        await first.send('[2,"still-2","Heartbeat",{}]')
        assert '"still-2"' in await asyncio.wait_for(first.recv(), WAIT)
    metrics = await scrape(client, relay)
    assert metrics['ocpp_gateway_takeovers_total{outcome="refused"}'] == 3.0
    assert csms.handshakes == 1  # refused newcomers never opened an upstream link


async def test_refused_newcomer_leaves_a_dead_connection_in_place(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    """The takeover happens only after the newcomer's upstream link is open: a newcomer the
    CSMS refuses (503) does not cost the live connection its socket."""
    gateway = await gateway_factory(upstream__url=csms.url, security__takeover_ping_timeout=0.2)
    stale = await client.ws_connect(f"{gateway.url}/ocpp/KEEP", protocols=("ocpp1.6",))
    stale_link = await csms.next_link()
    csms.refuse_status = 503
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(f"{gateway.url}/ocpp/KEEP", protocols=("ocpp1.6",))
    assert info.value.status == 503
    assert gateway.connections == 1
    assert not stale_link.closed.is_set()
    metrics = await scrape(client, gateway)
    assert 'ocpp_gateway_takeovers_total{outcome="replaced_dead"}' not in metrics
    await stale.close()


async def test_plugin_failing_on_connect_refuses_and_keeps_the_live_one(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    plugin = tmp_path / "flaky_connect.py"
    plugin.write_text(
        "from ocpp_gateway.routing import CONTINUE\n"
        "class Flaky:\n"
        "    calls = 0\n"
        "    def on_connect(self, info):\n"
        "        Flaky.calls += 1\n"
        "        if Flaky.calls > 1:\n"
        "            raise RuntimeError('plugin bug')\n"
        "        return CONTINUE\n"
        "    def on_call(self, message):\n"
        "        return CONTINUE\n"
        "    def on_call_result(self, message):\n"
        "        return CONTINUE\n"
        "    def on_disconnect(self, info):\n"
        "        pass\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        gateway = await gateway_factory(
            upstream__url=csms.url,
            security__takeover_ping_timeout=0.2,
            plugins__enabled=["flaky_connect:Flaky"],
        )
        stale = await client.ws_connect(f"{gateway.url}/ocpp/PLUG", protocols=("ocpp1.6",))
        await csms.next_link()
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect(f"{gateway.url}/ocpp/PLUG", protocols=("ocpp1.6",))
        assert info.value.status == 500
        assert gateway.connections == 1
        assert csms.handshakes == 1
        await stale.close()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("flaky_connect", None)
