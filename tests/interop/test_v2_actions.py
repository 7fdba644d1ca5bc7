"""OCPP 2.0.1 and 2.1 through the gateway, between `ocpp` library peers."""

from __future__ import annotations

import pytest

from .conftest import Interop, fixtures

CP_TO_CSMS_201 = [
    "BootNotification",
    "Heartbeat",
    "StatusNotification",
    "Authorize",
    "TransactionEvent",
    "MeterValues",
]
CSMS_TO_CP_201 = [
    "GetVariables",
    "SetVariables",
    "RequestStartTransaction",
    "Reset",
    "TriggerMessage",
]


@pytest.mark.parametrize("action", CP_TO_CSMS_201)
async def test_201_charge_point_calls(interop: Interop, action: str) -> None:
    version = "ocpp2.0.1"
    client = await interop.connect("CS201", version)
    await client.call(version, action, fixtures(version)[action]["request"])
    server = await interop.csms.peer("CS201")
    assert [a for a, _ in server.handled] == [action]
    assert server.recorder.received == client.recorder.sent
    assert client.recorder.received == server.recorder.sent


@pytest.mark.parametrize("action", CSMS_TO_CP_201)
async def test_201_csms_calls(interop: Interop, action: str) -> None:
    version = "ocpp2.0.1"
    client = await interop.connect("CS201", version)
    server = await interop.csms.peer("CS201")
    await server.call(version, action, fixtures(version)[action]["request"])
    assert [a for a, _ in client.handled] == [action]
    assert client.recorder.received == server.recorder.sent
    assert server.recorder.received == client.recorder.sent


async def test_201_a_session_of_several_calls_in_both_directions(interop: Interop) -> None:
    version = "ocpp2.0.1"
    payloads = fixtures(version)
    client = await interop.connect("CS201", version)
    for action in ("BootNotification", "StatusNotification", "Heartbeat"):
        await client.call(version, action, payloads[action]["request"])
    server = await interop.csms.peer("CS201")
    for action in ("GetVariables", "TriggerMessage"):
        await server.call(version, action, payloads[action]["request"])
    await client.call(version, "TransactionEvent", payloads["TransactionEvent"]["request"])
    assert [a for a, _ in server.handled] == [
        "BootNotification",
        "StatusNotification",
        "Heartbeat",
        "TransactionEvent",
    ]
    assert [a for a, _ in client.handled] == ["GetVariables", "TriggerMessage"]
    assert server.recorder.received == client.recorder.sent
    assert client.recorder.received == server.recorder.sent


@pytest.mark.parametrize("action", ["BootNotification", "Heartbeat"])
async def test_21_charge_point_calls(interop: Interop, action: str) -> None:
    version = "ocpp2.1"
    client = await interop.connect("CS21", version)
    await client.call(version, action, fixtures(version)[action]["request"])
    server = await interop.csms.peer("CS21")
    assert [a for a, _ in server.handled] == [action]
    assert server.recorder.received == client.recorder.sent
    assert client.recorder.received == server.recorder.sent
