"""Redaction: one test per hidden field, checked in the record (payload and `raw`)."""

from __future__ import annotations

from time import monotonic
from typing import Any

import orjson
import pytest

from ocpp_gateway.capture import Redactor
from ocpp_gateway.capture.redact import MASK

from ._support import record_of, session

SECRETS = Redactor(("AuthorizationKey", "BasicAuthPassword"), True, False)
HASHING = Redactor((), False, True, salt="pepper")


def _call(version: str, action: str, payload: dict[str, Any], r: Redactor) -> dict[str, Any]:
    frame = orjson.dumps([2, "c-1", action, payload])
    verdict = session(version).from_csms(frame, monotonic())
    assert verdict.forward, verdict.error_detail  # a valid call: only redaction changes it
    record = record_of("csms_to_cp", frame, verdict, version, r)[0]
    assert orjson.loads(record["raw"])[3] == record["payload"]  # raw holds the redacted frame
    return record


def _result(
    version: str, action: str, request: dict[str, Any], payload: dict[str, Any], r: Redactor
) -> dict[str, Any]:
    s = session(version)
    s.from_csms(orjson.dumps([2, "c-1", action, request]), monotonic())
    frame = orjson.dumps([3, "c-1", payload])
    verdict = s.from_charge_point(frame, monotonic())
    assert verdict.forward, verdict.error_detail
    record = record_of("cp_to_csms", frame, verdict, version, r)[0]
    assert orjson.loads(record["raw"])[2] == record["payload"]
    return record


def test_change_configuration_authorization_key() -> None:
    record = _call(
        "ocpp1.6", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "0011AABB"}, SECRETS
    )
    assert record["payload"] == {"key": "AuthorizationKey", "value": MASK}
    assert "0011AABB" not in record["raw"] and record["meta"]["redacted"] == ["value"]


def test_change_configuration_of_a_password_named_key() -> None:
    record = _call(
        "ocpp1.6", "ChangeConfiguration", {"key": "WifiPassword", "value": "hunter2"}, SECRETS
    )
    assert record["payload"]["value"] == MASK and "hunter2" not in record["raw"]


def test_change_configuration_of_another_key_keeps_its_bytes() -> None:
    frame = b'[2,"c-1","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]'
    verdict = session().from_csms(frame, monotonic())
    record = record_of("csms_to_cp", frame, verdict, "ocpp1.6", SECRETS)[0]
    assert record["raw"].encode() == frame and "redacted" not in record["meta"]


def test_get_configuration_result_value() -> None:
    keys = [
        {"key": "HeartbeatInterval", "readonly": False, "value": "60"},
        {"key": "AuthorizationKey", "readonly": False, "value": "0011AABB"},
    ]
    record = _result("ocpp1.6", "GetConfiguration", {}, {"configurationKey": keys}, SECRETS)
    assert record["payload"]["configurationKey"][0]["value"] == "60"
    assert record["payload"]["configurationKey"][1]["value"] == MASK
    assert record["meta"]["redacted"] == ["configurationKey.1.value"]


@pytest.mark.parametrize("version", ["ocpp2.0.1", "ocpp2.1"])
def test_set_variables_basic_auth_password(version: str) -> None:
    data = [
        {
            "attributeValue": "s3cret-pass",
            "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"},
        },
        {
            "attributeValue": "300",
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
        },
    ]
    record = _call(version, "SetVariables", {"setVariableData": data}, SECRETS)
    values = [d["attributeValue"] for d in record["payload"]["setVariableData"]]
    assert values == [MASK, "300"] and "s3cret-pass" not in record["raw"]


def test_get_variables_result_attribute_value() -> None:
    request = {
        "getVariableData": [
            {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
        ]
    }
    result = {
        "getVariableResult": [
            {
                "attributeStatus": "Accepted",
                "attributeValue": "s3cret-pass",
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
            }
        ]
    }
    record = _result("ocpp2.0.1", "GetVariables", request, result, SECRETS)
    assert record["payload"]["getVariableResult"][0]["attributeValue"] == MASK


def test_notify_report_value() -> None:
    payload = {
        "requestId": 1,
        "generatedAt": "2026-01-01T00:00:00Z",
        "seqNo": 0,
        "reportData": [
            {
                "component": {"name": "SecurityCtrlr"},
                "variable": {"name": "BasicAuthPassword"},
                "variableAttribute": [{"value": "s3cret-pass"}],
            }
        ],
    }
    frame = orjson.dumps([2, "n-1", "NotifyReport", payload])
    verdict = session("ocpp2.0.1").from_charge_point(frame, monotonic())
    record = record_of("cp_to_csms", frame, verdict, "ocpp2.0.1", SECRETS)[0]
    assert record["payload"]["reportData"][0]["variableAttribute"][0]["value"] == MASK


def _profile(version: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": "wss://csms.example/ocpp",
        "messageTimeout": 30,
        "securityProfile": 2,
        "ocppInterface": "Wireless0",
        "apn": {"apn": "internet", "apnPassword": "apn-pass", "apnAuthentication": "AUTO"},
        "vpn": {
            "server": "vpn.example",
            "user": "u",
            "password": "vpn-pass",
            "key": "vpn-shared-key",
            "type": "IPSec",
        },
    }
    if version == "ocpp2.1":
        data["ocppVersion"] = "OCPP21"
        data["basicAuthPassword"] = "basic-pass"
    return {"configurationSlot": 1, "connectionData": data}


@pytest.mark.parametrize(
    ("version", "field"),
    [
        ("ocpp2.0.1", "apn.apnPassword"),
        ("ocpp2.0.1", "vpn.password"),
        ("ocpp2.0.1", "vpn.key"),
        ("ocpp2.1", "basicAuthPassword"),
    ],
)
def test_set_network_profile_secret(version: str, field: str) -> None:
    record = _call(version, "SetNetworkProfile", _profile(version), SECRETS)
    value: Any = record["payload"]["connectionData"]
    for part in field.split("."):
        value = value[part]
    assert value == MASK
    assert f"connectionData.{field}" in record["meta"]["redacted"]
    assert "-pass" not in record["raw"] and "vpn-shared-key" not in record["raw"]


def test_ev_certificate_answer_with_its_private_key() -> None:
    request = {
        "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
        "action": "Install",
        "exiRequest": "AAAA",
    }
    result = {"status": "Accepted", "exiResponse": "PRIVATE-KEY-MATERIAL"}
    s = session("ocpp2.0.1")
    s.from_charge_point(orjson.dumps([2, "e-1", "Get15118EVCertificate", request]), monotonic())
    frame = orjson.dumps([3, "e-1", result])
    record = record_of("csms_to_cp", frame, s.from_csms(frame, monotonic()), "ocpp2.0.1", SECRETS)
    assert record[0]["payload"]["exiResponse"] == MASK
    assert "PRIVATE-KEY" not in record[0]["raw"]


def test_id_tags_are_kept_unless_hashing_is_asked() -> None:
    frame = b'[2,"a-1","Authorize",{"idTag":"TAG-0001"}]'
    verdict = session().from_charge_point(frame, monotonic())
    assert record_of("cp_to_csms", frame, verdict, "ocpp1.6", SECRETS)[0]["raw"].encode() == frame


def test_1_6_id_tag_and_parent_id_tag_are_hashed() -> None:
    record = _result(
        "ocpp1.6",
        "RemoteStartTransaction",
        {"idTag": "TAG-0001"},
        {"status": "Accepted"},
        HASHING,
    )
    assert "redacted" not in record["meta"]
    s = session()
    frame = b'[2,"a-1","Authorize",{"idTag":"TAG-0001"}]'
    call = record_of(
        "cp_to_csms", frame, s.from_charge_point(frame, monotonic()), "ocpp1.6", HASHING
    )[0]
    hashed = call["payload"]["idTag"]
    assert hashed == HASHING.hash_tag("TAG-0001") and hashed.startswith("sha256:")
    assert len(hashed) == len("sha256:") + 16 and "TAG-0001" not in call["raw"]
    answer = b'[3,"a-1",{"idTagInfo":{"status":"Accepted","parentIdTag":"PARENT-1"}}]'
    result = record_of("csms_to_cp", answer, s.from_csms(answer, monotonic()), "ocpp1.6", HASHING)[
        0
    ]
    assert result["payload"]["idTagInfo"]["parentIdTag"] == HASHING.hash_tag("PARENT-1")
    assert result["meta"]["redacted"] == ["idTagInfo.parentIdTag"]


def test_2_x_id_token_and_group_id_token_are_hashed() -> None:
    payload = {"idToken": {"idToken": "TOKEN-9", "type": "ISO14443"}}
    frame = orjson.dumps([2, "a-2", "Authorize", payload])
    s = session("ocpp2.0.1")
    call = record_of(
        "cp_to_csms", frame, s.from_charge_point(frame, monotonic()), "ocpp2.0.1", HASHING
    )[0]
    assert call["payload"]["idToken"] == {
        "idToken": HASHING.hash_tag("TOKEN-9"),
        "type": "ISO14443",
    }
    answer = orjson.dumps(
        [
            3,
            "a-2",
            {
                "idTokenInfo": {
                    "status": "Accepted",
                    "groupIdToken": {"idToken": "GROUP-1", "type": "Central"},
                }
            },
        ]
    )
    result = record_of(
        "csms_to_cp", answer, s.from_csms(answer, monotonic()), "ocpp2.0.1", HASHING
    )[0]
    group = result["payload"]["idTokenInfo"]["groupIdToken"]["idToken"]
    assert group == HASHING.hash_tag("GROUP-1") and "GROUP-1" not in result["raw"]


def test_the_salt_changes_the_hash() -> None:
    assert Redactor((), False, True, "a").hash_tag("T") != Redactor((), False, True, "b").hash_tag(
        "T"
    )


def test_redaction_can_be_switched_off() -> None:
    frame = b'[2,"c-1","ChangeConfiguration",{"key":"AuthorizationKey","value":"0011AABB"}]'
    verdict = session().from_csms(frame, monotonic())
    off = Redactor(("AuthorizationKey",), False, False)
    assert not off.active
    assert record_of("csms_to_cp", frame, verdict, "ocpp1.6", None)[0]["raw"].encode() == frame


def test_an_unmatched_result_is_redacted_by_every_result_rule() -> None:
    key = {"key": "AuthorizationKey", "readonly": False, "value": "0011"}
    frame = orjson.dumps([3, "lost", {"configurationKey": [key]}])
    verdict = session().from_charge_point(frame, monotonic())
    assert verdict.drop_reason == "unmatched_result" and verdict.action is None
    record = record_of("cp_to_csms", frame, verdict, "ocpp1.6", SECRETS)[0]
    assert record["payload"]["configurationKey"][0]["value"] == MASK
    assert "0011" not in record["raw"]
