"""The admin API's capture endpoints through running gateways (local responder, loopback): the
switch, the trace with its filters and pages, the live tail, refusals, and two workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from kit import WAIT, poll
from ocpp_gateway.config import load_config
from ocpp_gateway.server import RunningGateway, start_gateway

from ._support import check_record

TOKEN = "capture-test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BOOT = b'[2,"boot-1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'


@contextlib.asynccontextmanager
async def _gateway(**overrides: Any) -> AsyncIterator[RunningGateway]:
    values = {
        "host": "127.0.0.1",
        "port": 0,
        "admin.host": "127.0.0.1",
        "admin.port": 0,
        "admin.token": TOKEN,
        "drain_timeout": 0.0,
    }
    worker = overrides.pop("worker", 0)
    peer_dir = overrides.pop("peer_dir", None)
    values.update(overrides)
    gateway = await start_gateway(load_config(None, {}, values), worker=worker, peer_dir=peer_dir)
    try:
        yield gateway
    finally:
        await gateway.stop(0.0)


@contextlib.asynccontextmanager
async def _two_workers(
    peer_dir: Path,
) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    """Two gateways in this process as workers 0 and 1 of one supervisor would be: each on its
    own ports, both serving the admin API on their sockets in `peer_dir`."""
    async with (
        _gateway(worker=0, peer_dir=str(peer_dir)) as first,
        _gateway(worker=1, peer_dir=str(peer_dir)) as second,
    ):
        yield first, second


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
        yield session


async def _call(ws: aiohttp.ClientWebSocketResponse, frame: bytes) -> Any:
    await ws.send_bytes(frame)
    message = await asyncio.wait_for(ws.receive(), WAIT)
    return json.loads(message.data)


async def _trace(
    client: aiohttp.ClientSession, gateway: RunningGateway, cp: str, **query: str
) -> tuple[list[dict[str, Any]], aiohttp.ClientResponse]:
    async with client.get(
        f"{gateway.admin_url}/charge-points/{cp}/trace", params=query, headers=AUTH
    ) as answer:
        body = await answer.read()
    assert answer.status == 200, body
    assert answer.content_type == "application/x-ndjson"
    return [orjson.loads(line) for line in body.splitlines()], answer


async def test_switch_on_with_no_body_then_read_filter_and_page_the_trace(
    client: aiohttp.ClientSession,
) -> None:
    async with _gateway(**{"capture.default_frames": 50}) as gateway:
        url = f"{gateway.admin_url}/charge-points/CP-1/capture"
        async with client.post(url, headers=AUTH) as answer:
            assert answer.status == 404  # not connected yet
        ws = await client.ws_connect(f"{gateway.url}/ocpp/CP-1", protocols=("ocpp1.6",))
        async with client.post(url, headers=AUTH) as answer:
            status = await answer.json()
        assert answer.status == 200 and status["active"] is True
        assert status["frames_left"] == 50  # the default bound
        assert (await _call(ws, BOOT))[0] == 3
        for n in range(3):
            assert (await _call(ws, b'[2,"hb-%d","Heartbeat",{}]' % n))[0] == 3
        bad = await _call(ws, b'[2,"bad-1","Heartbeat",{"extra":1}]')
        assert bad[0] == 4
        found, _ = await _trace(client, gateway, "CP-1")
        for record in found:
            check_record(record)
        assert len(found) == 10
        assert found[0]["raw"].encode() == BOOT
        assert [r["meta"]["verdict"] for r in found[-2:]] == ["answered", "sent"]
        assert found[-2]["meta"]["errorCode"] == "FormationViolation"
        # Filters.
        beats, _ = await _trace(client, gateway, "CP-1", action="Heartbeat", direction="cp-to-csms")
        assert [r["messageId"] for r in beats] == ["hb-0", "hb-1", "hb-2", "bad-1"]
        one, _ = await _trace(client, gateway, "CP-1", message_id="hb-1")
        assert [r["direction"] for r in one] == ["cp-to-csms", "csms-to-cp"]
        late, _ = await _trace(client, gateway, "CP-1", since=found[-1]["timestamp"])
        assert late and all(r["timestamp"] >= found[-1]["timestamp"] for r in late)
        none, _ = await _trace(client, gateway, "CP-1", until="2000-01-01T00:00:00Z")
        assert none == []
        # Pages of 3 records: the cursor chain gives back every record once, in order.
        pages: list[dict[str, Any]] = []
        after = "0"
        for _ in range(10):
            page, answer = await _trace(client, gateway, "CP-1", limit="3", after=after)
            pages.extend(page)
            if "X-Next-After" not in answer.headers:
                break
            after = answer.headers["X-Next-After"]
            assert 'rel="next"' in answer.headers["Link"]
        assert pages == found
        # Switched off: no more frames, the ring stays readable.
        async with client.delete(url, headers=AUTH) as answer:
            assert answer.status == 200 and (await answer.json())["active"] is False
        await _call(ws, b'[2,"hb-9","Heartbeat",{}]')
        after_off, _ = await _trace(client, gateway, "CP-1")
        assert after_off == found
        await ws.close()


async def test_the_frame_bound_of_the_body(client: aiohttp.ClientSession) -> None:
    async with _gateway() as gateway:
        ws = await client.ws_connect(f"{gateway.url}/ocpp/CP-2", protocols=("ocpp1.6",))
        url = f"{gateway.admin_url}/charge-points/CP-2/capture"
        async with client.post(url, json={"frames": 3, "seconds": None}, headers=AUTH) as answer:
            assert answer.status == 200
        for n in range(3):
            await _call(ws, b'[2,"hb-%d","Heartbeat",{}]' % n)
        found, _ = await _trace(client, gateway, "CP-2")
        assert len(found) == 3  # call, result, call: then the bound switched it off
        async with client.get(url, headers=AUTH) as answer:
            assert (await answer.json())["active"] is False
        await ws.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "query"),
    [
        ("POST", "capture", b"[1]", {}),
        ("POST", "capture", b"{", {}),
        ("POST", "capture", b'{"frames": -1}', {}),
        ("POST", "capture", b'{"frames": true}', {}),
        ("POST", "capture", b'{"seconds": "soon"}', {}),
        ("GET", "trace", None, {"limit": "0"}),
        ("GET", "trace", None, {"limit": "many"}),
        ("GET", "trace", None, {"direction": "sideways"}),
        ("GET", "trace", None, {"since": "yesterday"}),
        ("GET", "trace", None, {"until": "nan"}),
        ("GET", "tail", None, {"backlog": "x"}),
    ],
)
async def test_bad_requests_get_400(
    client: aiohttp.ClientSession,
    method: str,
    path: str,
    body: bytes | None,
    query: dict[str, str],
) -> None:
    async with _gateway(**{"capture.charge_points": ["CP-3"]}) as gateway:
        ws = await client.ws_connect(f"{gateway.url}/ocpp/CP-3", protocols=("ocpp1.6",))
        url = f"{gateway.admin_url}/charge-points/CP-3/{path}"
        async with client.request(method, url, data=body, params=query, headers=AUTH) as answer:
            assert answer.status == 400, await answer.text()
            assert "error" in await answer.json()
        await ws.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/charge-points/CP-1/capture"),
        ("DELETE", "/charge-points/CP-1/capture"),
        ("GET", "/charge-points/CP-1/capture"),
        ("GET", "/charge-points/CP-1/trace"),
        ("GET", "/charge-points/CP-1/tail"),
        ("GET", "/console/api/overview"),
    ],
)
async def test_the_token_is_required(client: aiohttp.ClientSession, method: str, path: str) -> None:
    async with _gateway(**{"capture.charge_points": ["CP-1"]}) as gateway:
        for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
            async with client.request(
                method, f"{gateway.admin_url}{path}", headers=headers
            ) as answer:
                assert answer.status == 401
                assert b"CP-1" not in await answer.read()


async def test_the_live_tail_streams_each_frame(client: aiohttp.ClientSession) -> None:
    async with _gateway(**{"capture.charge_points": ["tail-*"]}) as gateway:
        ws = await client.ws_connect(f"{gateway.url}/ocpp/tail-1", protocols=("ocpp1.6",))
        await _call(ws, BOOT)
        url = f"{gateway.admin_url}/charge-points/tail-1/tail"
        async with client.get(url, params={"backlog": "1"}, headers=AUTH) as answer:
            assert answer.status == 200 and answer.content_type == "text/event-stream"
            events: list[dict[str, Any]] = []

            async def read() -> None:
                async for line in answer.content:
                    if line.startswith(b"data: "):
                        events.append(orjson.loads(line[6:]))

            reader = asyncio.create_task(read())
            await poll(lambda: len(events) >= 1, "the backlog")
            assert events[0]["messageType"] == "CALLRESULT"  # the last frame before the tail
            await _call(ws, b'[2,"hb-1","Heartbeat",{}]')
            await poll(lambda: len(events) >= 3, "the two new frames")
            assert [e["messageId"] for e in events[1:3]] == ["hb-1", "hb-1"]
            assert [e["meta"]["seq"] for e in events] == [2, 3, 4]
            reader.cancel()
        stream = gateway.runtime.capture.get("tail-1")
        assert stream is not None
        await poll(lambda: not stream.tails, "the tail's queue is removed when it goes")
        await ws.close()


async def test_the_console_page_and_overview(client: aiohttp.ClientSession) -> None:
    async with _gateway(**{"capture.charge_points": ["CP-5"]}) as gateway:
        ws = await client.ws_connect(f"{gateway.url}/ocpp/CP-5", protocols=("ocpp1.6",))
        await _call(ws, b'[2,"x","Heartbeat",{"extra":1}]')  # one rejection
        async with client.get(f"{gateway.admin_url}/console/") as answer:
            page = await answer.text()
        assert answer.status == 200 and "console.js" in page
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
        async with client.get(f"{gateway.admin_url}/console/nothing.js") as answer:
            assert answer.status == 404
        async with client.get(f"{gateway.admin_url}/console/api/overview", headers=AUTH) as answer:
            view = await answer.json()
        assert view["charge_points"]["CP-5"] == {"rejections": 1}
        assert view["capture"]["CP-5"]["active"] is True
        assert [b["name"] for b in view["backends"]] == ["default"]
        assert view["violation_log"] is False and view["violations"] == []
        await ws.close()


async def test_any_worker_answers_for_a_charge_point_of_another(
    client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with _two_workers(tmp_path) as (first, second):
        ws = await client.ws_connect(f"{second.url}/ocpp/CP-W", protocols=("ocpp1.6",))
        base = f"{first.admin_url}/charge-points/CP-W"
        async with client.post(f"{base}/capture", headers=AUTH) as answer:
            assert answer.status == 200, await answer.text()
        assert first.runtime.capture.get("CP-W") is None
        assert second.runtime.capture.get("CP-W") is not None
        async with client.get(f"{base}/tail", headers=AUTH) as tail:
            assert tail.status == 200
            await _call(ws, BOOT)
            lines: list[bytes] = []
            while len([x for x in lines if x.startswith(b"data: ")]) < 2:
                lines.append(await asyncio.wait_for(tail.content.readline(), WAIT))
        stream = second.runtime.capture.get("CP-W")
        assert stream is not None
        # The client left: the relaying worker notices, and so does the one holding the tail.
        await poll(lambda: not stream.tails, "the other worker's tail ends with the client")
        found, _ = await _trace(client, first, "CP-W")
        assert [r["meta"]["worker"] for r in found] == [1, 1]
        assert found[0]["raw"].encode() == BOOT
        async with client.get(f"{first.admin_url}/console/api/overview", headers=AUTH) as answer:
            view = await answer.json()
        assert "CP-W" in view["charge_points"] and {b["worker"] for b in view["backends"]} == {0, 1}
        async with client.get(f"{first.admin_url}/charge-points/nobody/trace", headers=AUTH) as a:
            assert a.status == 404
        await ws.close()


async def test_the_worker_holding_the_connection_answers_before_a_stale_stream(
    client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with _two_workers(tmp_path) as (first, second):
        base = f"{first.admin_url}/charge-points/CP-M"
        ws = await client.ws_connect(f"{first.url}/ocpp/CP-M", protocols=("ocpp1.6",))
        async with client.post(f"{base}/capture", headers=AUTH) as answer:
            assert answer.status == 200
        await _call(ws, b'[2,"on-0","Heartbeat",{}]')
        await ws.close()
        await poll(lambda: "CP-M" not in first.registry.live, "the first connection is gone")
        # The charger comes back on the other worker; capture is switched on there.
        ws = await client.ws_connect(f"{second.url}/ocpp/CP-M", protocols=("ocpp1.6",))
        await poll(lambda: "CP-M" in second.registry.live, "the second connection")
        async with client.post(f"{base}/capture", headers=AUTH) as answer:
            assert answer.status == 200
        await _call(ws, b'[2,"on-1","Heartbeat",{}]')
        found, _ = await _trace(client, first, "CP-M")
        assert [(r["messageId"], r["meta"]["worker"]) for r in found] == [("on-1", 1)] * 2
        async with client.delete(f"{base}/capture", headers=AUTH) as answer:
            assert answer.status == 200
        second_stream = second.runtime.capture.get("CP-M")
        assert second_stream is not None and not second_stream.active
        # Asked on the worker itself, the stale stream there still answers.
        stale, _ = await _trace(client, first, "CP-M", scope="worker")
        assert [r["messageId"] for r in stale] == ["on-0", "on-0"]
        await ws.close()
