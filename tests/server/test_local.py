"""The embedded local responder: schema-valid answers to charge point calls, and its journal."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from ocpp_gateway.schemas import default_schemas, official_schema_dir

from ._support import GatewayFactory, receive_frame

NOW = "2025-01-01T00:00:00Z"


def response_validator(version: str, action: str) -> jsonschema.protocols.Validator:
    path = official_schema_dir(version) / f"{action}Response.json"  # type: ignore[arg-type]
    draft = jsonschema.Draft4Validator if version == "ocpp1.6" else jsonschema.Draft6Validator
    return draft(json.loads(path.read_text()))


CALLS_16: list[tuple[str, dict[str, Any]]] = [
    ("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}),
    ("Heartbeat", {}),
    ("Authorize", {"idTag": "TAG1"}),
    ("StartTransaction", {"connectorId": 1, "idTag": "TAG1", "meterStart": 0, "timestamp": NOW}),
    ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging"}),
    (
        "MeterValues",
        {"connectorId": 1, "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": "21.4"}]}]},
    ),
    ("StopTransaction", {"meterStop": 10, "timestamp": NOW, "transactionId": 1}),
    ("DataTransfer", {"vendorId": "x"}),
    ("DiagnosticsStatusNotification", {"status": "Idle"}),
    ("FirmwareStatusNotification", {"status": "Idle"}),
]

CALLS_201: list[tuple[str, dict[str, Any]]] = [
    (
        "BootNotification",
        {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}},
    ),
    ("Heartbeat", {}),
    ("Authorize", {"idToken": {"idToken": "TAG1", "type": "ISO14443"}}),
    (
        "StatusNotification",
        {"timestamp": NOW, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    ),
    (
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": NOW,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "T1"},
            "idToken": {"idToken": "TAG1", "type": "ISO14443"},
        },
    ),
    (
        "MeterValues",
        {"evseId": 1, "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": 1.5}]}]},
    ),
    ("NotifyReport", {"requestId": 1, "generatedAt": NOW, "seqNo": 0}),
    ("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": NOW}),
    ("SignCertificate", {"csr": "abc"}),
    ("DataTransfer", {"vendorId": "x"}),
]


@pytest.mark.parametrize(("version", "calls"), [("ocpp1.6", CALLS_16), ("ocpp2.0.1", CALLS_201)])
async def test_local_responder_answers_with_schema_valid_responses(
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
    tmp_path: Path,
    version: str,
    calls: list[tuple[str, dict[str, Any]]],
) -> None:
    journal = tmp_path / "journal.sqlite3"
    gateway = await gateway_factory(local__journal=str(journal))
    ws = await client.ws_connect(f"{gateway.url}/ocpp/LOCAL1", protocols=(version,))
    for n, (action, payload) in enumerate(calls):
        await ws.send_str(json.dumps([2, f"c{n}", action, payload]))
        answer = json.loads(await receive_frame(ws))
        assert answer[:2] == [3, f"c{n}"], (action, answer)
        errors = list(response_validator(version, action).iter_errors(answer[2]))
        assert not errors, (action, answer[2], errors)
        if action == "BootNotification":
            assert answer[2]["status"] == "Accepted"
            assert answer[2]["interval"] == 300
        if action == "StartTransaction":
            assert answer[2]["transactionId"] == 1
    await ws.close()
    await gateway.stop(0.0)
    rows = (
        sqlite3.connect(journal)
        .execute("SELECT charge_point_id, direction, frame FROM frames ORDER BY rowid")
        .fetchall()
    )
    assert len(rows) == 2 * len(calls)
    assert {row[0] for row in rows} == {"LOCAL1"}
    assert [row[1] for row in rows[:2]] == ["cp_to_csms", "csms_to_cp"]
    assert json.loads(rows[0][2])[2] == "BootNotification"


async def test_allow_list_rejects_unknown_tags(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(local__accept_all=False, local__allowed_id_tags=["GOOD"])
    ws = await client.ws_connect(f"{gateway.url}/ocpp/LOCAL2", protocols=("ocpp1.6",))
    for tag, status in (("GOOD", "Accepted"), ("BAD", "Invalid")):
        await ws.send_str(json.dumps([2, tag, "Authorize", {"idTag": tag}]))
        answer = json.loads(await receive_frame(ws))
        assert answer[2]["idTagInfo"]["status"] == status
    await ws.close()


async def test_local_responder_does_not_answer_commands_results(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory()
    ws = await client.ws_connect(f"{gateway.url}/ocpp/LOCAL3", protocols=("ocpp2.0.1",))
    # A result nobody asked for is dropped by the session; the next call is answered.
    await ws.send_str('[3,"never-asked",{}]')
    await ws.send_str('[2,"h","Heartbeat",{}]')
    assert json.loads(await receive_frame(ws))[:2] == [3, "h"]
    await ws.close()


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"])
async def test_every_charge_point_action_gets_a_schema_valid_answer(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession, version: str
) -> None:
    """Every CALL a charge point may send in `version` (one valid request per action from the
    shared fixtures) is answered with a CALLRESULT that passes the core's response schema."""
    schemas = default_schemas(version)  # type: ignore[arg-type]
    requests = json.loads((FIXTURES / f"{version}.json").read_text())
    actions = [
        action
        for action, direction in schemas.actions()
        if direction != "csms_to_cp" and schemas.has_schema(action, True)
    ]
    assert len(actions) >= 10
    gateway = await gateway_factory()
    ws = await client.ws_connect(f"{gateway.url}/ocpp/EVERY", protocols=(version,))
    for n, action in enumerate(actions):
        await ws.send_str(json.dumps([2, f"a{n}", action, requests[action]["request"]]))
        answer = json.loads(await receive_frame(ws))
        assert answer[:2] == [3, f"a{n}"], (action, answer)
        assert schemas.validate(action, True, json.dumps(answer[2]).encode()) is None, answer
    await ws.close()
