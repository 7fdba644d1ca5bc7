"""Security end to end against the real gateway on loopback: profiles, identity takeover,
secrets kept out of logs, metrics and answers."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from kit import WAIT
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.security import SecurityConfig
from ocpp_gateway.server import RunningGateway, start_gateway

from .conftest import PASSWORD, Pki, client_ssl_context
from .test_auth import basic

Start = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    started: list[RunningGateway] = []

    async def _start(**security: Any) -> RunningGateway:
        security.setdefault("message_rate", 0.0)
        cfg = GatewayConfig(host="127.0.0.1", port=0, security=SecurityConfig(**security))
        gw = await start_gateway(cfg)
        started.append(gw)
        return gw

    yield _start
    for gw in started:
        await gw.stop(drain_timeout=0)


def counter(gw: RunningGateway, name: str, **labels: str) -> float:
    for metric in gw.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def heartbeat(ws: ClientConnection, uid: str) -> None:
    await ws.send(json.dumps([2, uid, "Heartbeat", {}]))
    async with asyncio.timeout(WAIT):
        answer = json.loads(await ws.recv())
    assert answer[:2] == [3, uid]


async def open_cp(gw: RunningGateway, cp_id: str, **kwargs: Any) -> ClientConnection:
    return await connect(
        f"{gw.url}/ocpp/{cp_id}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        open_timeout=WAIT,
        **kwargs,
    )


async def status_of(gw: RunningGateway, cp_id: str, **kwargs: Any) -> int:
    try:
        ws = await open_cp(gw, cp_id, **kwargs)
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def test_unauthenticated_newcomer_never_displaces_a_live_connection(start: Start) -> None:
    gw = await start(takeover="ping", takeover_ping_timeout=2.0)
    first = await open_cp(gw, "CP-T")
    try:
        await heartbeat(first, "h1")
        assert await status_of(gw, "CP-T") == 409
        await heartbeat(first, "h2")  # the live one is untouched
        assert counter(gw, "ocpp_gateway_takeovers_total", outcome="refused") == 1
    finally:
        await first.close()


async def test_authenticated_newcomer_replaces(start: Start, credentials_file: Path) -> None:
    gw = await start(credentials_file=str(credentials_file), takeover="replace")
    auth = {"additional_headers": {"Authorization": basic("CP-1", PASSWORD)}}
    first = await open_cp(gw, "CP-1", **auth)
    second = await open_cp(gw, "CP-1", **auth)
    try:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(WAIT):
                await first.recv()
        assert first.close_code == 1008
        await heartbeat(second, "h1")
        assert counter(gw, "ocpp_gateway_takeovers_total", outcome="replaced") == 1
        # A wrong password never reaches the takeover stage.
        bad = {"additional_headers": {"Authorization": basic("CP-1", "not-the-password-1")}}
        assert await status_of(gw, "CP-1", **bad) == 401
        await heartbeat(second, "h2")
    finally:
        await first.close()
        await second.close()


async def test_refuse_policy_keeps_the_live_one_even_if_authenticated(
    start: Start, credentials_file: Path
) -> None:
    gw = await start(credentials_file=str(credentials_file), takeover="refuse")
    auth = {"additional_headers": {"Authorization": basic("CP-1", PASSWORD)}}
    first = await open_cp(gw, "CP-1", **auth)
    try:
        assert await status_of(gw, "CP-1", **auth) == 409
        await heartbeat(first, "h1")
    finally:
        await first.close()


async def test_dead_live_connection_is_replaced_after_failed_ping(start: Start) -> None:
    """A live socket that no longer reads (a dead charge point) loses its id to a newcomer."""
    gw = await start(takeover="ping", takeover_ping_timeout=0.3, ping_interval=0)
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ocpp/CP-DEAD HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    try:
        # This peer never answers pings: the newcomer takes over.
        newcomer = await open_cp(gw, "CP-DEAD")
        try:
            await heartbeat(newcomer, "h1")
        finally:
            await newcomer.close()
        assert counter(gw, "ocpp_gateway_takeovers_total", outcome="replaced_dead") == 1
    finally:
        writer.close()


async def test_profile3_on_the_gateway(start: Start, pki: Pki) -> None:
    gw = await start(
        tls_cert=str(pki.server_cert), tls_key=str(pki.server_key), client_ca=str(pki.ca_cert)
    )
    assert gw.url.startswith("wss://")
    ws = await open_cp(gw, "CP-3", ssl=client_ssl_context(pki, pki.client("CP-3")))
    try:
        await heartbeat(ws, "h1")
    finally:
        await ws.close()
    assert await status_of(gw, "CP-4", ssl=client_ssl_context(pki, pki.client("CP-3"))) == 401


async def test_secrets_never_leak(
    start: Start, credentials_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = await start(credentials_file=str(credentials_file), auth_failures_per_minute=100)
    good = {"additional_headers": {"Authorization": basic("CP-1", PASSWORD)}}
    ws = await open_cp(gw, "CP-1", **good)
    await heartbeat(ws, "h1")
    await ws.close()
    bodies = []
    for cp_id, pw in (("CP-1", PASSWORD + "x"), ("CP-404", PASSWORD), ("CP-2", PASSWORD[::-1])):
        try:
            await open_cp(gw, cp_id, additional_headers={"Authorization": basic(cp_id, pw)})
            pytest.fail("should be refused")
        except InvalidStatus as exc:
            bodies.append((exc.response.status_code, bytes(exc.response.body or b"")))
    assert len(set(bodies)) == 1  # unknown ids and wrong passwords look the same
    http_url = gw.url.replace("ws", "http", 1)
    async with aiohttp.ClientSession() as http, http.get(f"{http_url}/metrics") as resp:
        metrics_text = await resp.text()
    assert counter(gw, "ocpp_gateway_auth_failures_total", reason="bad_credentials") == 3
    logs = "\n".join(
        r.getMessage() + json.dumps(r.__dict__, default=str)
        for r in caplog.records
        if not r.name.startswith("websockets")
    )
    secret_forms = [PASSWORD, PASSWORD[::-1], basic("CP-1", PASSWORD).split()[1]]
    for secret in secret_forms:
        assert secret not in logs
        assert secret not in metrics_text
        assert all(secret.encode() not in body for _, body in bodies)
    assert "CP-404" not in metrics_text  # ids are never metric labels


async def test_401_carries_a_basic_challenge(start: Start, credentials_file: Path) -> None:
    """RFC 7235 §3.1 / RFC 7617 §2: a 401 names the scheme and realm the client must use."""
    gw = await start(credentials_file=str(credentials_file))
    for headers in ({}, {"Authorization": basic("CP-1", "wrong-password-123")}):
        with pytest.raises(InvalidStatus) as info:
            await open_cp(gw, "CP-1", additional_headers=headers)
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="ocpp-gateway"'


async def test_concurrent_newcomers_against_a_dead_connection_one_wins(start: Start) -> None:
    """Two newcomers racing for the id of a dead socket: one takes it over, the other gets 409,
    so the charge point never holds two relayed connections (and two upstream links)."""
    gw = await start(takeover="ping", takeover_ping_timeout=0.3, ping_interval=0)
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ocpp/CP-RACE HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    try:
        outcomes = await asyncio.gather(
            open_cp(gw, "CP-RACE"), open_cp(gw, "CP-RACE"), return_exceptions=True
        )
        winners = [o for o in outcomes if isinstance(o, ClientConnection)]
        refused = [o for o in outcomes if isinstance(o, InvalidStatus)]
        try:
            assert len(winners) == 1, outcomes
            assert [r.response.status_code for r in refused] == [409]
            await heartbeat(winners[0], "h1")
            assert gw.connections == 1
        finally:
            for ws in winners:
                await ws.close()
    finally:
        writer.close()
