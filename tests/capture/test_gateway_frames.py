"""Frames the gateway sends itself are in the trace too, marked `source: gateway` with their
reason: a plugin's answer, the rate limiter's, and a call made through the admin API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from ocpp.exceptions import SecurityError

from interop.conftest import Interop, LibraryCsms, running_gateway
from kit import WAIT
from ocpp_gateway.server import RunningGateway

from ._support import check_record

TOKEN = "gateway-frames-token-01"
ADMIN = {"admin.host": "127.0.0.1", "admin.port": 0, "admin.token": TOKEN}


def _records(gateway: RunningGateway, charge_point_id: str) -> list[dict[str, Any]]:
    stream = gateway.runtime.capture.get(charge_point_id)
    assert stream is not None
    found = list(gateway.runtime.capture.records(list(stream.ring)))
    for record in found:
        check_record(record)
    return found


async def test_a_plugins_answer_to_a_backends_call(library_csms: LibraryCsms) -> None:
    overrides = {
        "capture.charge_points": ["CP-P"],
        "plugins.enabled": ["block_commands"],
        "plugins.options": {"block_commands": {"actions": ["Reset"]}},
    }
    async with running_gateway(library_csms.url, **overrides) as gateway:
        setup = Interop(library_csms, gateway)
        client = await setup.connect("CP-P", "ocpp1.6")
        server = await library_csms.peer("CP-P")
        with pytest.raises(SecurityError):
            await server.call("ocpp1.6", "Reset", {"type": "Soft"})
        found = _records(gateway, "CP-P")
        await client.recorder.connection.close()
        client.task.cancel()
        await asyncio.gather(client.task, return_exceptions=True)
    assert [(r["direction"], r["messageType"], r["meta"]["source"]) for r in found] == [
        ("csms-to-cp", "CALL", "backend"),
        ("cp-to-csms", "CALLERROR", "gateway"),
    ]
    assert found[1]["meta"]["reason"] == "plugin" and found[1]["action"] == "Reset"
    assert found[1]["raw"] == server.recorder.received[0]  # what the backend got, byte for byte
    assert client.recorder.received == []  # the charge point never saw the Reset


async def test_the_rate_limiters_answer() -> None:
    overrides = {
        **ADMIN,
        "capture.charge_points": ["CP-L"],
        "security.message_rate": 0.001,
        "security.message_burst": 1,
        "security.rate_excess": "callerror",
    }
    async with (
        running_gateway(None, **overrides) as gateway,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{gateway.url}/ocpp/CP-L", protocols=("ocpp1.6",)) as ws,
    ):
        answers = []
        for n in range(2):
            await ws.send_str(f'[2,"hb-{n}","Heartbeat",{{}}]')
            answers.append(json.loads((await asyncio.wait_for(ws.receive(), WAIT)).data))
        found = _records(gateway, "CP-L")
    assert [a[0] for a in answers] == [3, 4]
    limited = [r for r in found if r["meta"].get("reason") == "rate_limited"]
    assert len(limited) == 1 and limited[0]["messageType"] == "CALLERROR"
    assert limited[0]["messageId"] == "hb-1" and limited[0]["meta"]["source"] == "gateway"
    assert json.loads(limited[0]["raw"]) == answers[1]


async def test_a_call_made_through_the_admin_api() -> None:
    async with (
        running_gateway(None, **ADMIN, **{"capture.charge_points": ["CP-A"]}) as gateway,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{gateway.url}/ocpp/CP-A", protocols=("ocpp1.6",)) as ws,
    ):

        async def charge_point() -> None:
            call = json.loads((await asyncio.wait_for(ws.receive(), WAIT)).data)
            await ws.send_str(json.dumps([3, call[1], {"status": "Accepted"}]))

        answering = asyncio.create_task(charge_point())
        async with http.post(
            f"{gateway.admin_url}/charge-points/CP-A/calls",
            json={"action": "Reset", "payload": {"type": "Soft"}},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as answer:
            assert answer.status == 200
        await answering
        found = _records(gateway, "CP-A")
    assert [(r["messageType"], r["meta"]["source"], r["meta"]["backend"]) for r in found] == [
        ("CALL", "gateway", "admin"),
        ("CALLRESULT", "charge_point", "admin"),
    ]
    assert found[0]["meta"]["reason"] == "admin_call" and found[1]["action"] == "Reset"
