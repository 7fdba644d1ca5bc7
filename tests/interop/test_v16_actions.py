"""Every OCPP 1.6 action (all feature profiles and the security extension) through the gateway,
between `ocpp` library peers, in the direction the specification gives it."""

from __future__ import annotations

import json

import pytest

from .conftest import Interop, fixtures

VERSION = "ocpp1.6"

# OCPP 1.6 edition 2 §4 (Operations initiated by Charge Point) and the Security whitepaper.
CP_TO_CSMS = [
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "LogStatusNotification",
    "SecurityEventNotification",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
]
# §5 (Operations initiated by Central System) and the Security whitepaper.
CSMS_TO_CP = [
    "CancelReservation",
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "DataTransfer",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetDiagnostics",
    "GetLocalListVersion",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
    "CertificateSigned",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetInstalledCertificateIds",
    "GetLog",
    "InstallCertificate",
    "SignedUpdateFirmware",
]


def test_the_lists_cover_every_16_action() -> None:
    assert set(CP_TO_CSMS) | set(CSMS_TO_CP) == set(fixtures(VERSION))


@pytest.mark.parametrize("action", CP_TO_CSMS)
async def test_charge_point_call_reaches_the_csms_and_its_answer_comes_back_unchanged(
    interop: Interop, action: str
) -> None:
    pair = fixtures(VERSION)[action]
    client = await interop.connect("CP16", VERSION)
    await client.call(VERSION, action, pair["request"])
    server = await interop.csms.peer("CP16")
    assert [a for a, _ in server.handled] == [action]
    # The gateway forwards the exact bytes both ways.
    assert server.recorder.received == client.recorder.sent
    assert client.recorder.received == server.recorder.sent
    assert json.loads(client.recorder.received[0])[2] == json.loads(server.recorder.sent[0])[2]


@pytest.mark.parametrize("action", CSMS_TO_CP)
async def test_csms_call_reaches_the_charge_point_and_its_answer_comes_back_unchanged(
    interop: Interop, action: str
) -> None:
    pair = fixtures(VERSION)[action]
    client = await interop.connect("CP16", VERSION)
    server = await interop.csms.peer("CP16")
    await server.call(VERSION, action, pair["request"])
    assert [a for a, _ in client.handled] == [action]
    assert client.recorder.received == server.recorder.sent
    assert server.recorder.received == client.recorder.sent
