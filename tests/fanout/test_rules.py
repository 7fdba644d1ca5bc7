"""The rules of second backends as tables: selection, command refusal, UniqueId restoring,
answer comparison, unknown commands, and the candidate store across a reopen."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ocpp_gateway.fanout import (
    REFUSAL_CODE,
    CandidateStore,
    command_refusal,
    compare_answers,
    decisions,
    read_report,
    serves,
    unknown_commands,
)
from ocpp_gateway.fanout.rules import restore_unique_id
from ocpp_gateway.schemas import VERSIONS, default_schemas


@pytest.mark.parametrize(
    ("patterns", "charge_point_id", "expected"),
    [
        ((), "CP-1", True),
        (("CP-1",), "CP-1", True),
        (("CP-1",), "CP-10", False),
        (("site7-*",), "site7-04", True),
        (("site7-*",), "site8-04", False),
        (("a", "b*"), "bx", True),
        (("cp-1",), "CP-1", False),  # case-sensitive, like the identities
    ],
)
def test_serves(patterns: tuple[str, ...], charge_point_id: str, expected: bool) -> None:
    assert serves(patterns, charge_point_id) is expected


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        ("controller", "SetChargingProfile", True),
        ("controller", "Reset", False),
        ("observer", "SetChargingProfile", False),
        ("candidate", "SetChargingProfile", False),
    ],
)
def test_command_refusal(role: str, action: str, allowed: bool) -> None:
    refusal = command_refusal(role, frozenset({"SetChargingProfile"}), action)
    assert (refusal is None) is allowed
    if not allowed:
        assert refusal
    assert REFUSAL_CODE == "SecurityError"


def test_unknown_commands_against_the_schemas() -> None:
    directions: dict[str, dict[str, str]] = {
        v: dict(default_schemas(v).actions()) for v in VERSIONS
    }
    commands = ["SetChargingProfile", "Authorize", "Bogus", "SetVariables", "DataTransfer"]
    # Authorize is a charge point's call, Bogus nothing; SetVariables is 2.x only (still known).
    assert unknown_commands(commands, directions) == ["Authorize", "Bogus"]


@pytest.mark.parametrize(
    ("frame", "original"),
    [
        (b'[3,"gw-00ff",{"status":"Accepted","data":"gw-00ff"}]', "abc"),
        (b'[4,"gw-00ff","NotSupported","",{}]', 'quote"d'),
        (b'[3, "gw-00ff", {}]', "x"),
    ],
)
def test_restore_unique_id(frame: bytes, original: str) -> None:
    restored = orjson.loads(restore_unique_id(frame, "gw-00ff", original))
    assert restored[1] == original
    assert restored[2:] == orjson.loads(frame)[2:]


@pytest.mark.parametrize(
    ("primary", "candidate", "outcome"),
    [
        # Timestamps and ids are ignored; statuses and intervals are compared.
        (
            [3, "1", {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 60}],
            [3, "1", {"status": "Accepted", "currentTime": "2026-05-05T10:00:00Z", "interval": 60}],
            "agree",
        ),
        (
            [3, "1", {"status": "Accepted", "interval": 60}],
            [3, "1", {"status": "Accepted", "interval": 300}],
            "disagree",
        ),
        (
            [3, "1", {"idTagInfo": {"status": "Accepted"}, "transactionId": 5}],
            [3, "1", {"idTagInfo": {"status": "Accepted"}, "transactionId": 900}],
            "agree",
        ),
        (
            [3, "1", {"idTagInfo": {"status": "Accepted", "expiryDate": "2027-01-01T00:00:00Z"}}],
            [3, "1", {"idTagInfo": {"status": "Invalid"}}],
            "disagree",
        ),
        ([3, "1", {"idTokenInfo": {"status": "Accepted"}}], [3, "1", {}], "disagree"),
        ([3, "1", {}], [4, "1", "InternalError", "", {}], "disagree"),
        ([4, "1", "NotSupported", "", {}], [4, "1", "NotSupported", "x", {}], "agree"),
        ([4, "1", "NotSupported", "", {}], [4, "1", "InternalError", "", {}], "disagree"),
        ([3, "1", {"currentTime": "a"}], [3, "1", {"currentTime": "b"}], "agree"),
    ],
)
def test_compare_answers(primary: list[object], candidate: list[object], outcome: str) -> None:
    found, detail = compare_answers(orjson.dumps(primary), orjson.dumps(candidate))
    assert found == outcome
    assert bool(detail) is (outcome == "disagree")


def test_decisions_paths() -> None:
    payload = {"status": "A", "a": [{"status": "B"}, {"x": 1}], "interval": 3, "currentTime": "t"}
    assert decisions(payload) == {"status": "A", "a[0].status": "B", "interval": 3}


def test_store_keeps_the_id_map_and_report_across_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "candidate.sqlite")
    store = CandidateStore(path)
    store.map_transaction("csms", "CP-1", "17", "9001")
    store.count("Authorize", "agree")
    store.count("Authorize", "disagree")
    for n in range(30):
        store.sample("CP-1", "Authorize", f"d{n}", "[3]", "[3]")
    store.close()
    again = CandidateStore(path)
    assert again.candidate_id("csms", "CP-1", "17") == "9001"
    assert again.candidate_id("csms", "CP-2", "17") is None
    assert again.candidate_id("next", "CP-1", "17") is None
    again.count("Authorize", "agree")
    report = again.report()
    assert report["actions"] == {"Authorize": {"agree": 2, "disagree": 1}}
    assert len(report["disagreements"]) == 20  # the newest SAMPLES_PER_ACTION
    assert report["disagreements"][-1]["detail"] == "d29"
    again.close()
    assert read_report(path)["mapped_transactions"] == 1
