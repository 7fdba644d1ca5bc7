"""The action tables (rust/ocpp-core/src/version/v*.rs) agree with the schemas and the spec."""

from __future__ import annotations

import re

import pytest

from . import _support as s

ROW = re.compile(r'^\s*\("(?P<action>\w+)", (?P<sender>ChargePoint|Csms|Either)\),', re.M)
WIRE = {"ChargePoint": "cp_to_csms", "Csms": "csms_to_cp", "Either": "both"}


def rust_table(version: str) -> list[tuple[str, str]]:
    """The (action, sender) rows of a version's Rust table, in file order."""
    text = s.RUST_TABLES[version].read_text(encoding="utf-8")
    return [(m["action"], WIRE[m["sender"]]) for m in ROW.finditer(text)]


@pytest.mark.parametrize("version", s.VERSIONS)
def test_table_matches_schema_directory(version: str) -> None:
    """Every action has a schema in the `ocpp` package and every schema an action."""
    actions = [a for a, _ in rust_table(version)]
    assert sorted(actions) == sorted(s.generator().schema_files(version))
    assert len(actions) == len(set(actions))


@pytest.mark.parametrize("version", s.VERSIONS)
def test_table_is_sorted_by_name(version: str) -> None:
    """Rows are in byte order, so a lookup may binary-search them."""
    actions = [a.encode() for a, _ in rust_table(version)]
    assert actions == sorted(actions)


def test_table_sizes() -> None:
    """1.6: 28 actions of the six profiles + 11 of the security extension; 2.0.1: 64; 2.1: 91."""
    assert [len(rust_table(v)) for v in s.VERSIONS] == [39, 64, 91]


@pytest.mark.parametrize("version", s.VERSIONS)
def test_data_transfer_is_the_only_action_sent_by_both(version: str) -> None:
    """OCPP 1.6 §4.3/§5.6, 2.x block P: DataTransfer may be initiated by either side."""
    assert [a for a, d in rust_table(version) if d == "both"] == ["DataTransfer"]


@pytest.mark.parametrize("version", s.VERSIONS)
def test_notifications_come_from_the_charge_point(version: str) -> None:
    """Every *Notification and Notify* action is sent by the charge point, except the CSMS
    notifications of 2.1 (NotifyAllowedEnergyTransfer, NotifyWebPaymentStarted)."""
    csms_notifies = {"NotifyAllowedEnergyTransfer", "NotifyWebPaymentStarted"}
    for action, direction in rust_table(version):
        if action.startswith("Notify") or action.endswith("Notification"):
            expected = "csms_to_cp" if action in csms_notifies else "cp_to_csms"
            assert direction == expected, action


@pytest.mark.parametrize("version", ["ocpp2.0.1", "ocpp2.1"])
def test_v201_directions_hold_in_v21(version: str) -> None:
    """2.1 keeps every 2.0.1 action with the same direction."""
    v201 = dict(rust_table("ocpp2.0.1"))
    table = dict(rust_table(version))
    assert {a: table[a] for a in v201} == v201


SPOT_CHECKS = {
    "ocpp1.6": {
        "BootNotification": "cp_to_csms",
        "StartTransaction": "cp_to_csms",
        "RemoteStartTransaction": "csms_to_cp",
        "GetDiagnostics": "csms_to_cp",
        "SignCertificate": "cp_to_csms",
        "ExtendedTriggerMessage": "csms_to_cp",
        "SignedUpdateFirmware": "csms_to_cp",
        "SecurityEventNotification": "cp_to_csms",
    },
    "ocpp2.0.1": {
        "TransactionEvent": "cp_to_csms",
        "RequestStartTransaction": "csms_to_cp",
        "Get15118EVCertificate": "cp_to_csms",
        "GetCertificateStatus": "cp_to_csms",
        "CostUpdated": "csms_to_cp",
        "ClearedChargingLimit": "cp_to_csms",
        "ReservationStatusUpdate": "cp_to_csms",
        "PublishFirmware": "csms_to_cp",
    },
    "ocpp2.1": {
        "NotifyPeriodicEventStream": "cp_to_csms",
        "OpenPeriodicEventStream": "cp_to_csms",
        "ClosePeriodicEventStream": "cp_to_csms",
        "AdjustPeriodicEventStream": "csms_to_cp",
        "GetPeriodicEventStream": "csms_to_cp",
        "NotifySettlement": "cp_to_csms",
        "GetTariffs": "csms_to_cp",
        "SetDefaultTariff": "csms_to_cp",
        "ChangeTransactionTariff": "csms_to_cp",
        "ClearTariffs": "csms_to_cp",
        "NotifyPriorityCharging": "cp_to_csms",
        "UsePriorityCharging": "csms_to_cp",
        "PullDynamicScheduleUpdate": "cp_to_csms",
        "UpdateDynamicSchedule": "csms_to_cp",
        "AFRRSignal": "csms_to_cp",
        "BatterySwap": "cp_to_csms",
        "RequestBatterySwap": "csms_to_cp",
        "VatNumberValidation": "cp_to_csms",
        "NotifyDERAlarm": "cp_to_csms",
        "NotifyDERStartStop": "cp_to_csms",
        "ReportDERControl": "cp_to_csms",
        "SetDERControl": "csms_to_cp",
        "GetDERControl": "csms_to_cp",
        "ClearDERControl": "csms_to_cp",
        "GetCertificateChainStatus": "cp_to_csms",
        "NotifyWebPaymentStarted": "csms_to_cp",
        "NotifyAllowedEnergyTransfer": "csms_to_cp",
    },
}


@pytest.mark.parametrize("version", s.VERSIONS)
def test_directions_of_the_specification(version: str) -> None:
    """Spot checks of the side that sends each CALL (1.6 §4-§5, 2.x Part 2 use cases)."""
    table = dict(rust_table(version))
    assert {a: table[a] for a in SPOT_CHECKS[version]} == SPOT_CHECKS[version]
