"""The admin listener: probes and metrics off the charge point port, and the charge point API
(listing, and calls the gateway makes itself: validated both ways, never seen by a backend)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16

from kit import WAIT, poll
from ocpp_gateway.server import RunningGateway

from ._support import Csms, GatewayFactory, receive_frame

TOKEN = "admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Charger(ChargePoint16):  # type: ignore[misc]  # the ocpp library is untyped
    """An `ocpp` library charge point that accepts resets and records them."""

    resets: list[str]

    @on("Reset")  # type: ignore[untyped-decorator]
    def on_reset(self, type: str) -> result16.Reset:
        self.resets.append(type)
        return result16.Reset(status="Accepted")


async def _admin(factory: GatewayFactory, **overrides: Any) -> RunningGateway:
    values: dict[str, Any] = {"admin__port": 0, "admin__host": "127.0.0.1", "admin__token": TOKEN}
    values.update(overrides)
    return await factory(**values)


async def _connected(gateway: RunningGateway, charge_point_id: str) -> None:
    await poll(lambda: charge_point_id in gateway.registry.live, f"{charge_point_id} connected")


async def test_the_api_lists_and_resets_an_ocpp_library_charger(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await _admin(gateway_factory)  # the local responder answers the charger
    async with websockets.connect(
        f"{gateway.url}/ocpp/CP-A", subprotocols=[websockets.Subprotocol("ocpp1.6")]
    ) as ws:
        charger = Charger("CP-A", ws)
        charger.resets = []
        task = asyncio.create_task(charger.start())
        try:
            boot = await asyncio.wait_for(
                charger.call(
                    call16.BootNotification(
                        charge_point_vendor="Acme", charge_point_model="A1", firmware_version="7.2"
                    )
                ),
                WAIT,
            )
            assert boot.status == "Accepted"
            async with client.get(f"{gateway.admin_url}/charge-points", headers=AUTH) as resp:
                assert resp.status == 200
                listing = await resp.json()
            [entry] = listing["charge_points"]
            assert entry["id"] == "CP-A" and entry["version"] == "ocpp1.6"
            assert (entry["vendor"], entry["model"], entry["firmware"]) == ("Acme", "A1", "7.2")
            assert entry["remote"] == "127.0.0.1" and entry["worker"] == 0
            assert entry["connected_since"].endswith("Z")
            assert entry["frames_from_charge_point"] == 1
            assert entry["frames_to_charge_point"] == 1

            async with client.post(
                f"{gateway.admin_url}/charge-points/CP-A/calls",
                headers=AUTH,
                json={"action": "Reset", "payload": {"type": "Soft"}},
            ) as resp:
                assert resp.status == 200, await resp.text()
                answer = await resp.json()
            assert answer["result"] == {"status": "Accepted"}
            assert answer["unique_id"].startswith("gw-") and len(answer["unique_id"]) <= 36
            assert charger.resets == ["Soft"]

            async with client.get(f"{gateway.admin_url}/charge-points/CP-A", headers=AUTH) as resp:
                assert (await resp.json())["frames_from_charge_point"] == 2
        finally:
            task.cancel()
    async with client.get(f"{gateway.admin_url}/charge-points/CP-A", headers=AUTH) as resp:
        assert resp.status == 404


async def _charge_point(
    client: aiohttp.ClientSession, gateway: RunningGateway, charge_point_id: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"{gateway.url}/ocpp/{charge_point_id}", protocols=("ocpp1.6",))
    await _connected(gateway, charge_point_id)
    return ws


async def test_the_answer_to_a_gateway_call_never_reaches_the_backend(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await _admin(gateway_factory, upstream__url=csms.url)
    ws = await _charge_point(client, gateway, "CP-R")
    link = await csms.next_link()
    posted = asyncio.ensure_future(
        client.post(
            f"{gateway.admin_url}/charge-points/CP-R/calls",
            headers=AUTH,
            json={"action": "TriggerMessage", "payload": {"requestedMessage": "Heartbeat"}},
        )
    )
    frame = json.loads(await receive_frame(ws))
    assert frame[0] == 2 and frame[2] == "TriggerMessage" and frame[1].startswith("gw-")
    await ws.send_str(json.dumps([3, frame[1], {"status": "Accepted"}]))
    resp = await asyncio.wait_for(posted, WAIT)
    assert resp.status == 200 and (await resp.json())["result"] == {"status": "Accepted"}
    # The next frame the backend sees is the charge point's next CALL, not the answer.
    await ws.send_str('[2,"h1","Heartbeat",{}]')
    assert json.loads(await link.next_frame())[:2] == [2, "h1"]
    await ws.close()


async def test_an_invalid_call_gets_400_with_the_core_error_code_and_is_never_sent(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await _admin(gateway_factory, validation__default="observe")
    ws = await _charge_point(client, gateway, "CP-V")
    url = f"{gateway.admin_url}/charge-points/CP-V/calls"
    cases = [
        ({"action": "Reset", "payload": {"type": "Sideways"}}, "PropertyConstraintViolation"),
        ({"action": "Reset", "payload": {}}, "OccurenceConstraintViolation"),
        ({"action": "Heartbeat", "payload": {}}, "NotSupported"),
        ({"action": "NoSuchThing", "payload": {}}, "NotImplemented"),
    ]
    for body, code in cases:
        async with client.post(url, headers=AUTH, json=body) as resp:
            assert resp.status == 400, body
            assert (await resp.json())["error_code"] == code, body
    for raw in (b"not json", b"[]", b'{"action": "Reset", "payload": []}'):
        async with client.post(url, headers=AUTH, data=raw) as resp:
            assert resp.status == 400
    # Nothing was sent: the first frame the charge point gets is this valid call.
    posted = asyncio.ensure_future(
        client.post(url, headers=AUTH, json={"action": "Reset", "payload": {"type": "Hard"}})
    )
    frame = json.loads(await receive_frame(ws))
    assert frame[2:] == ["Reset", {"type": "Hard"}]
    # An answer failing its schema (observe policy or not) is reported, not passed as valid.
    await ws.send_str(json.dumps([3, frame[1], {"status": "Maybe"}]))
    resp = await asyncio.wait_for(posted, WAIT)
    assert resp.status == 502
    assert (await resp.json())["error_code"] == "PropertyConstraintViolation"
    await ws.close()


async def test_a_callerror_gives_502_and_silence_gives_504_and_the_late_answer_stays_home(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await _admin(gateway_factory, upstream__url=csms.url, call_timeout=0.5)
    ws = await _charge_point(client, gateway, "CP-T")
    link = await csms.next_link()
    url = f"{gateway.admin_url}/charge-points/CP-T/calls"
    body = {"action": "Reset", "payload": {"type": "Soft"}}
    posted = asyncio.ensure_future(client.post(url, headers=AUTH, json=body))
    frame = json.loads(await receive_frame(ws))
    await ws.send_str(json.dumps([4, frame[1], "InternalError", "busy", {}]))
    resp = await asyncio.wait_for(posted, WAIT)
    assert resp.status == 502
    error = await resp.json()
    assert (error["error_code"], error["error_description"]) == ("InternalError", "busy")

    posted = asyncio.ensure_future(client.post(url, headers=AUTH, json=body))
    frame = json.loads(await receive_frame(ws))
    resp = await asyncio.wait_for(posted, WAIT)
    assert resp.status == 504
    # Answered too late: dropped, never forwarded to the backend.
    await ws.send_str(json.dumps([3, frame[1], {"status": "Accepted"}]))
    await ws.send_str('[2,"h2","Heartbeat",{}]')
    assert json.loads(await link.next_frame())[:2] == [2, "h2"]
    await ws.close()


async def test_the_api_needs_the_token_and_is_off_without_one(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await _admin(gateway_factory, metrics_on_main_port=False)
    api = f"{gateway.admin_url}/charge-points"
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": TOKEN},
    ):
        async with client.get(api, headers=headers) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    async with client.get(api, headers=AUTH) as resp:
        assert resp.status == 200 and (await resp.json()) == {"charge_points": []}
    # Probes and metrics on the admin port, no longer on the charge point port.
    http = gateway.url.replace("ws", "http", 1)
    for path in ("/metrics", "/healthz", "/readyz"):
        async with client.get(f"{gateway.admin_url}{path}") as resp:
            assert resp.status == 200, path
        async with client.get(f"{http}{path}") as resp:
            assert resp.status == 404, path

    tokenless = await _admin(gateway_factory, admin__token=None)
    async with client.get(f"{tokenless.admin_url}/charge-points", headers=AUTH) as resp:
        assert resp.status == 404
    async with client.get(f"{tokenless.admin_url}/healthz") as resp:
        assert resp.status == 200
    # By default the charge point port keeps them.
    async with client.get(tokenless.url.replace("ws", "http", 1) + "/metrics") as resp:
        assert resp.status == 200


async def test_the_token_is_never_logged(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    from ocpp_gateway.logs import JsonFormatter

    caplog.set_level("INFO")
    gateway = await _admin(gateway_factory)
    async with client.get(
        f"{gateway.admin_url}/charge-points", headers={"Authorization": "Bearer guess-guess-guess"}
    ) as resp:
        assert resp.status == 401
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any('"admin request refused"' in line for line in lines)
    assert not any(TOKEN in line or "guess-guess" in line for line in lines)
