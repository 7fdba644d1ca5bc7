"""Bad frames from either side are answered per the DESIGN.md error table and never forwarded;
losing one side closes the other. Raw `websockets` peers on the bad side, real peers on the
other."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection

from kit import WAIT
from ocpp_gateway.server import RunningGateway

from .conftest import Interop, RawCsms, running_gateway

# Per version: (framework, format, occurrence) spellings of OCPP-J (1.6 keeps its errata typos).
_SPELLING = {
    "ocpp1.6": ("FormationViolation", "FormationViolation", "OccurenceConstraintViolation"),
    "ocpp2.0.1": ("RpcFrameworkError", "FormatViolation", "OccurrenceConstraintViolation"),
    "ocpp2.1": ("RpcFrameworkError", "FormatViolation", "OccurrenceConstraintViolation"),
}
_BOOT_MISSING = {
    "ocpp1.6": {"chargePointVendor": "V"},
    "ocpp2.0.1": {"chargingStation": {"model": "M", "vendorName": "V"}},
    "ocpp2.1": {"chargingStation": {"model": "M", "vendorName": "V"}},
}
_BOOT_TOO_LONG = {
    "ocpp1.6": {"chargePointVendor": "V", "chargePointModel": "M" * 21},
    "ocpp2.0.1": {"reason": "PowerUp", "chargingStation": {"model": "M" * 21, "vendorName": "V"}},
    "ocpp2.1": {"reason": "PowerUp", "chargingStation": {"model": "M" * 21, "vendorName": "V"}},
}
_STATUS_BAD = {
    "ocpp1.6": {"connectorId": 1, "errorCode": "NoError", "status": "Broken"},
    "ocpp2.0.1": {
        "timestamp": "2025-01-01T00:00:00Z",
        "connectorStatus": "Broken",
        "evseId": 1,
        "connectorId": 1,
    },
    "ocpp2.1": {
        "timestamp": "2025-01-01T00:00:00Z",
        "connectorStatus": "Broken",
        "evseId": 1,
        "connectorId": 1,
    },
}
_STATUS_WRONG_TYPE = {
    "ocpp1.6": {"connectorId": "1", "errorCode": "NoError", "status": "Available"},
    "ocpp2.0.1": {
        "timestamp": "2025-01-01T00:00:00Z",
        "connectorStatus": "Available",
        "evseId": "1",
        "connectorId": 1,
    },
    "ocpp2.1": {
        "timestamp": "2025-01-01T00:00:00Z",
        "connectorStatus": "Available",
        "evseId": "1",
        "connectorId": 1,
    },
}


def cp_cases(version: str) -> list[tuple[str, str, str | None, str | None]]:
    """(case, frame text, expected error code or None for a silent drop, expected unique id)."""
    framework, fmt, occurrence = _SPELLING[version]
    unknown_type = "MessageTypeNotSupported" if version == "ocpp2.0.1" else None

    def frame(*items: Any) -> str:
        return json.dumps(list(items))

    return [
        ("not json", "not json[", framework, None),
        ("not an array", '{"a": 1}', framework, None),
        ("wrong length", frame(2, "u1", "Heartbeat"), framework, None),
        ("unique id too long", frame(2, "u" * 37, "Heartbeat", {}), framework, None),
        ("unknown message type", frame(9, "u2", "Heartbeat", {}), unknown_type, "u2"),
        ("unknown action", frame(2, "u3", "FooBar", {}), "NotImplemented", "u3"),
        ("wrong direction", frame(2, "u4", "Reset", {"type": "Hard"}), "NotSupported", "u4"),
        (
            "required missing",
            frame(2, "u5", "BootNotification", _BOOT_MISSING[version]),
            occurrence,
            "u5",
        ),
        (
            "over maxLength",
            frame(2, "u6", "BootNotification", _BOOT_TOO_LONG[version]),
            "TypeConstraintViolation",
            "u6",
        ),
        (
            "wrong type",
            frame(2, "u7", "StatusNotification", _STATUS_WRONG_TYPE[version]),
            "TypeConstraintViolation",
            "u7",
        ),
        (
            "outside enum",
            frame(2, "u8", "StatusNotification", _STATUS_BAD[version]),
            "PropertyConstraintViolation",
            "u8",
        ),
        ("additional property", frame(2, "u9", "Heartbeat", {"extra": 1}), fmt, "u9"),
    ]


CP_CASES = [
    pytest.param(version, *case, id=f"{version}-{case[0]}")
    for version in ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
    for case in cp_cases(version)
]


async def recv_json(connection: ClientConnection | ServerConnection) -> Any:
    return json.loads(await asyncio.wait_for(connection.recv(), WAIT))


async def raw_charge_point(gateway: RunningGateway, charge_point_id: str, version: str) -> Any:
    return await asyncio.wait_for(
        connect(f"{gateway.url}/ocpp/{charge_point_id}", subprotocols=[version]),  # type: ignore[list-item]
        WAIT,
    )


@pytest.mark.parametrize(("version", "case", "text", "code", "unique_id"), CP_CASES)
async def test_bad_frame_from_charge_point_is_answered_and_not_forwarded(
    interop: Interop, version: str, case: str, text: str, code: str | None, unique_id: str | None
) -> None:
    async with await raw_charge_point(interop.gateway, "RAW1", version) as client:
        server = await interop.csms.peer("RAW1")
        await client.send(text)
        heartbeat = json.dumps([2, "hb-1", "Heartbeat", {}])
        await client.send(heartbeat)
        first = await recv_json(client)
        if code is None:  # dropped without an answer: the next frame is the heartbeat's
            assert first[:2] == [3, "hb-1"]
        else:
            assert first[0] == 4 and first[2] == code, first
            if unique_id is not None:
                assert first[1] == unique_id
            assert (await recv_json(client))[:2] == [3, "hb-1"]
        # The CSMS saw the heartbeat and nothing else.
        assert server.recorder.received == [heartbeat]


@pytest.fixture
async def raw_pair(raw_csms: RawCsms) -> AsyncIterator[tuple[RawCsms, RunningGateway]]:
    async with running_gateway(raw_csms.url) as gateway:
        yield raw_csms, gateway


def csms_cases(version: str) -> list[tuple[str, str, str]]:
    framework, fmt, occurrence = _SPELLING[version]
    reset_bad = {"type": "Sideways"}
    if version == "ocpp1.6":
        boot: dict[str, Any] = {"chargePointVendor": "V", "chargePointModel": "M"}
    else:
        boot = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
    return [
        ("not json", "][", framework),
        ("unknown action", json.dumps([2, "c1", "FooBar", {}]), "NotImplemented"),
        ("wrong direction", json.dumps([2, "c2", "BootNotification", boot]), "NotSupported"),
        (
            "outside enum",
            json.dumps([2, "c3", "Reset", reset_bad]),
            "PropertyConstraintViolation",
        ),
        ("required missing", json.dumps([2, "c4", "Reset", {}]), occurrence),
        ("wrong type", json.dumps([2, "c5", "Reset", {"type": 5}]), "TypeConstraintViolation"),
        (
            "additional property",
            json.dumps(
                [
                    2,
                    "c6",
                    "Reset",
                    {"type": "Soft" if version == "ocpp1.6" else "Immediate", "x": 1},
                ]
            ),
            fmt,
        ),
        ("unique id too long", json.dumps([2, "c" * 37, "Reset", {"type": "Soft"}]), framework),
    ]


CSMS_CASES = [
    pytest.param(version, *case, id=f"{version}-{case[0]}")
    for version in ("ocpp1.6", "ocpp2.0.1")
    for case in csms_cases(version)
]


@pytest.mark.parametrize(("version", "case", "text", "code"), CSMS_CASES)
async def test_bad_frame_from_csms_is_answered_and_not_forwarded(
    raw_pair: tuple[RawCsms, RunningGateway], version: str, case: str, text: str, code: str
) -> None:
    csms, gateway = raw_pair
    async with await raw_charge_point(gateway, "RAW2", version) as client:
        _, upstream = await csms.next()
        await upstream.send(text)
        answer = await recv_json(upstream)
        assert answer[0] == 4 and answer[2] == code, answer
        valid = json.dumps([2, "ok-1", "TriggerMessage", {"requestedMessage": "Heartbeat"}])
        await upstream.send(valid)
        assert await asyncio.wait_for(client.recv(), WAIT) == valid


@pytest.mark.parametrize(
    ("version", "code"),
    [("ocpp1.6", "TypeConstraintViolation"), ("ocpp2.0.1", "TypeConstraintViolation")],
)
async def test_invalid_result_from_csms_becomes_a_callerror_to_the_charge_point(
    raw_pair: tuple[RawCsms, RunningGateway], version: str, code: str
) -> None:
    csms, gateway = raw_pair
    async with await raw_charge_point(gateway, "RAW3", version) as client:
        _, upstream = await csms.next()
        await client.send(json.dumps([2, "hb-2", "Heartbeat", {}]))
        call = await recv_json(upstream)
        assert call == [2, "hb-2", "Heartbeat", {}]
        await upstream.send(json.dumps([3, "hb-2", {"currentTime": 5}]))
        answer = await recv_json(client)
        assert answer[:3] == [4, "hb-2", code]


async def test_21_invalid_result_from_csms_also_earns_it_a_callresulterror(
    raw_pair: tuple[RawCsms, RunningGateway],
) -> None:
    csms, gateway = raw_pair
    async with await raw_charge_point(gateway, "RAW4", "ocpp2.1") as client:
        _, upstream = await csms.next()
        await client.send(json.dumps([2, "hb-3", "Heartbeat", {}]))
        assert (await recv_json(upstream))[:2] == [2, "hb-3"]
        await upstream.send(json.dumps([3, "hb-3", {"currentTime": 5}]))
        assert (await recv_json(client))[:3] == [4, "hb-3", "TypeConstraintViolation"]
        back = await recv_json(upstream)
        assert back[:2] == [5, "hb-3"]


async def test_unmatched_result_from_csms_is_dropped(
    raw_pair: tuple[RawCsms, RunningGateway],
) -> None:
    csms, gateway = raw_pair
    async with await raw_charge_point(gateway, "RAW5", "ocpp1.6") as client:
        _, upstream = await csms.next()
        await upstream.send(json.dumps([3, "nobody-asked", {}]))
        await upstream.send(json.dumps([4, "nobody-either", "GenericError", "", {}]))
        valid = json.dumps([2, "ok-2", "ClearCache", {}])
        await upstream.send(valid)
        assert await asyncio.wait_for(client.recv(), WAIT) == valid


async def test_losing_the_upstream_closes_the_charge_point_socket(
    raw_pair: tuple[RawCsms, RunningGateway],
) -> None:
    csms, gateway = raw_pair
    client = await raw_charge_point(gateway, "RAW6", "ocpp1.6")
    _, upstream = await csms.next()
    await upstream.close()
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(client.recv(), WAIT)
    assert client.close_code is not None


async def test_a_charge_point_leaving_closes_its_upstream(
    raw_pair: tuple[RawCsms, RunningGateway],
) -> None:
    csms, gateway = raw_pair
    client = await raw_charge_point(gateway, "RAW7", "ocpp2.0.1")
    charge_point_id, _ = await csms.next()
    assert charge_point_id == "RAW7"
    await client.close()
    await asyncio.wait_for(csms.closed["RAW7"].wait(), WAIT)


@pytest.mark.parametrize(
    ("version", "code"),
    [("ocpp1.6", None), ("ocpp2.0.1", "MessageTypeNotSupported"), ("ocpp2.1", None)],
)
async def test_unknown_message_type_from_csms(
    raw_pair: tuple[RawCsms, RunningGateway], version: str, code: str | None
) -> None:
    csms, gateway = raw_pair
    async with await raw_charge_point(gateway, "RAW8", version) as client:
        _, upstream = await csms.next()
        await upstream.send(json.dumps([9, "m1", "ClearCache", {}]))
        if code is not None:
            assert (await recv_json(upstream))[:3] == [4, "m1", code]
        valid = json.dumps([2, "ok-3", "ClearCache", {}])
        await upstream.send(valid)
        # The bad frame never reached the charge point: the valid call is the first it sees.
        assert await asyncio.wait_for(client.recv(), WAIT) == valid
        # And (1.6, 2.1) the CSMS got no answer: the next frame it sees is the charge point's.
        await client.send(json.dumps([3, "ok-3", {"status": "Accepted"}]))
        assert (await recv_json(upstream))[:2] == [3, "ok-3"]
