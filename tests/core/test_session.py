"""Session, Policy, SchemaSet and error_code_for through the binding: correlation and expiry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocpp_gateway import _core

from . import _support as s
from .conftest import SessionFactory

HEARTBEAT = b'[2,"hb-1","Heartbeat",{}]'
HEARTBEAT_RESULT = b'[3,"hb-1",{"currentTime":"2025-03-14T09:26:53Z"}]'
RESET_16 = b'[2,"rs-1","Reset",{"type":"Soft"}]'


def test_message_type_constants() -> None:
    """OCPP-J MessageTypeIds (2.1 Part 4 §4.1.3)."""
    assert (_core.CALL, _core.CALLRESULT, _core.CALLERROR) == (2, 3, 4)
    assert (_core.CALLRESULTERROR, _core.SEND) == (5, 6)


def test_forwarded_frame_keeps_every_byte(new_session: SessionFactory) -> None:
    """A valid frame is forwarded as the sender wrote it: the verdict carries no copy."""
    session = new_session("ocpp1.6")
    verdict = session.from_charge_point(HEARTBEAT, 1.0)
    assert verdict.forward and verdict.reply is None and verdict.substitute is None
    assert (verdict.unique_id, verdict.action, verdict.message_type) == ("hb-1", "Heartbeat", 2)
    assert verdict.error_code is None and verdict.error_detail is None and not verdict.observed


def test_result_reports_call_duration(new_session: SessionFactory) -> None:
    session = new_session("ocpp1.6")
    assert session.from_charge_point(HEARTBEAT, 100.0).forward
    assert session.pending() == 1
    verdict = session.from_csms(HEARTBEAT_RESULT, 100.75)
    assert verdict.forward and verdict.action == "Heartbeat"
    assert verdict.call_duration == pytest.approx(0.75)
    assert session.pending() == 0


def test_pending_counts_both_directions(new_session: SessionFactory) -> None:
    session = new_session("ocpp1.6")
    assert session.from_charge_point(HEARTBEAT, 1.0).forward
    assert session.from_csms(RESET_16, 1.0).forward
    assert session.pending() == 2
    assert session.from_charge_point(b'[3,"rs-1",{"status":"Accepted"}]', 2.0).forward
    assert session.pending() == 1


def test_calls_answered_out_of_order(new_session: SessionFactory) -> None:
    """OCPP-J allows one call in flight per side, but a relay must not rely on order."""
    session = new_session("ocpp2.0.1")
    for i in range(5):
        assert session.from_csms(f'[2,"r{i}","ClearCache",{{}}]'.encode(), float(i)).forward
    for i in (3, 0, 4, 1, 2):
        verdict = session.from_charge_point(f'[3,"r{i}",{{"status":"Accepted"}}]'.encode(), 10.0)
        assert verdict.forward and verdict.unique_id == f"r{i}"
        assert verdict.call_duration == pytest.approx(10.0 - i)
    assert session.pending() == 0


def test_expire_drops_old_calls_only(new_session: SessionFactory) -> None:
    session = new_session("ocpp1.6", call_timeout=30.0)
    assert session.from_charge_point(HEARTBEAT, 100.0).forward
    assert session.from_csms(RESET_16, 120.0).forward
    assert session.expire(129.9) == []
    assert session.expire(131.0) == [("cp_to_csms", "hb-1", "Heartbeat")]
    assert session.pending() == 1
    late = session.from_csms(HEARTBEAT_RESULT, 131.5)
    assert not late.forward and late.drop_reason == "unmatched_result"
    assert session.expire(200.0) == [("csms_to_cp", "rs-1", "Reset")]
    assert session.pending() == 0
    assert session.expire(300.0) == []


def test_expire_frees_the_unique_id(new_session: SessionFactory) -> None:
    session = new_session("ocpp2.1", call_timeout=5.0)
    boot = (
        b'[2,"hb-1","BootNotification",{"reason":"PowerUp",'
        b'"chargingStation":{"model":"M","vendorName":"V"}}]'
    )
    assert session.from_charge_point(HEARTBEAT, 0.0).forward
    other = session.from_charge_point(boot, 1.0)  # same id, another action, still pending
    assert not other.forward and other.error_code == "RpcFrameworkError"
    assert len(session.expire(10.0)) == 1
    assert session.from_charge_point(boot, 10.0).forward


def test_retransmission_is_forwarded_and_refreshes_the_call(new_session: SessionFactory) -> None:
    """The same UniqueId and action while pending is the sender's retry: forwarded, one call."""
    session = new_session("ocpp1.6", call_timeout=5.0)
    assert session.from_charge_point(HEARTBEAT, 0.0).forward
    again = session.from_charge_point(HEARTBEAT, 4.0)
    assert again.forward and again.reply is None and again.error_code is None
    assert session.pending() == 1
    assert session.expire(8.0) == []  # counted from the retransmission, not the first send
    answer = session.from_csms(HEARTBEAT_RESULT, 8.5)
    assert answer.forward and answer.action == "Heartbeat" and answer.call_duration == 4.5
    assert session.from_csms(HEARTBEAT_RESULT, 8.6).drop_reason == "unmatched_result"


def test_sessions_are_independent(new_session: SessionFactory) -> None:
    """Pending calls belong to one connection: another session cannot answer them."""
    one, two = new_session("ocpp1.6"), new_session("ocpp1.6")
    assert one.from_charge_point(HEARTBEAT, 1.0).forward
    assert two.from_csms(HEARTBEAT_RESULT, 1.5).drop_reason == "unmatched_result"
    assert one.from_csms(HEARTBEAT_RESULT, 1.5).forward


def test_reply_is_a_callerror_frame(new_session: SessionFactory) -> None:
    """OCPP-J §4.2.3: [4, UniqueId, errorCode, errorDescription, errorDetails]."""
    session = new_session("ocpp2.0.1")
    verdict = session.from_charge_point(b'[2,"x-1","Heartbeat",{"extra":1}]', 1.0)
    reply = s.parse_frame(verdict.reply)
    assert reply is not None and reply[:3] == [4, "x-1", "FormatViolation"]
    assert isinstance(reply[3], str) and isinstance(reply[4], dict)
    assert verdict.error_detail and "extra" not in str(reply[4])


def test_error_detail_never_carries_payload_values(new_session: SessionFactory) -> None:
    """Details name the JSON path and the rule, never a value (it may be a secret)."""
    session = new_session("ocpp1.6")
    secret = "hunter2-secret-token"
    frame = json.dumps([2, "a-1", "Authorize", {"idTag": secret * 2}]).encode()
    verdict = session.from_charge_point(frame, 1.0)
    assert verdict.error_code == "TypeConstraintViolation"
    assert secret not in (verdict.error_detail or "")
    assert verdict.reply is not None and secret.encode() not in verdict.reply


def test_observe_sets_observed(new_session: SessionFactory) -> None:
    session = new_session("ocpp2.0.1", _core.Policy("observe"))
    verdict = session.from_charge_point(b'[2,"o-1","Heartbeat",{"extra":1}]', 1.0)
    assert verdict.forward and verdict.observed and verdict.error_code == "FormatViolation"
    assert session.pending() == 1


def test_policy_can_be_replaced_on_a_live_session(new_session: SessionFactory) -> None:
    session = new_session("ocpp2.0.1")
    assert not session.from_charge_point(b'[2,"p-1","Heartbeat",{"x":1}]', 1.0).forward
    session.policy = _core.Policy("off")
    assert session.policy.mode("Heartbeat", "cp_to_csms") == "off"
    assert session.from_charge_point(b'[2,"p-2","Heartbeat",{"x":1}]', 2.0).forward


def test_policy_most_specific_key_wins() -> None:
    policy = _core.Policy(
        "enforce",
        {
            "cp_to_csms": "observe",
            "BootNotification": "off",
            "BootNotification:csms_to_cp": "enforce",
        },
    )
    assert policy.mode("Heartbeat", "csms_to_cp") == "enforce"
    assert policy.mode("Heartbeat", "cp_to_csms") == "observe"
    assert policy.mode("BootNotification", "cp_to_csms") == "off"
    assert policy.mode("BootNotification", "csms_to_cp") == "enforce"


@pytest.mark.parametrize(
    ("default", "overrides"),
    [("strict", None), ("enforce", {"Heartbeat": "loose"}), ("enforce", {"Heartbeat:up": "off"})],
)
def test_policy_rejects_unknown_modes_and_directions(
    default: str, overrides: dict[str, str] | None
) -> None:
    with pytest.raises(ValueError):
        _core.Policy(default, overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "kind", "code"),
    [
        ("ocpp1.6", "framework", "FormationViolation"),
        ("ocpp2.0.1", "framework", "RpcFrameworkError"),
        ("ocpp2.1", "framework", "RpcFrameworkError"),
        ("ocpp2.0.1", "message_type", "MessageTypeNotSupported"),
        ("ocpp1.6", "occurrence", "OccurenceConstraintViolation"),
        ("ocpp2.1", "occurrence", "OccurrenceConstraintViolation"),
        ("ocpp1.6", "format", "FormationViolation"),
        ("ocpp2.0.1", "format", "FormatViolation"),
        ("ocpp1.6", "not_implemented", "NotImplemented"),
        ("ocpp2.1", "not_supported", "NotSupported"),
        ("ocpp1.6", "type", "TypeConstraintViolation"),
        ("ocpp2.0.1", "property", "PropertyConstraintViolation"),
        ("ocpp2.1", "internal", "InternalError"),
        ("ocpp1.6", "generic", "GenericError"),
    ],
)
def test_error_code_for(version: str, kind: str, code: str) -> None:
    """The DESIGN.md error table; 1.6 keeps its misspellings (OCPP-J 1.6 errata)."""
    assert _core.error_code_for(version, kind) == code  # type: ignore[arg-type]


@pytest.mark.parametrize("version", s.VERSIONS)
def test_schema_set_lists_the_table(version: str, schema_sets: dict[str, _core.SchemaSet]) -> None:
    schemas = schema_sets[version]
    assert schemas.version == version
    actions = dict(schemas.actions())
    assert set(actions) == set(s.generator().schema_files(version))
    assert set(actions.values()) == {"cp_to_csms", "csms_to_cp", "both"}
    assert schemas.has_schema("Heartbeat", False) and schemas.has_schema("Heartbeat", True)
    assert not schemas.has_schema("FlyToTheMoon", False)


def test_send_only_action_has_no_response_schema(schema_sets: dict[str, _core.SchemaSet]) -> None:
    assert schema_sets["ocpp2.1"].has_schema("NotifyPeriodicEventStream", False)
    assert not schema_sets["ocpp2.1"].has_schema("NotifyPeriodicEventStream", True)


def test_session_rejects_schemas_of_another_version(
    schema_sets: dict[str, _core.SchemaSet],
) -> None:
    with pytest.raises(ValueError):
        _core.Session("ocpp2.0.1", schemas=schema_sets["ocpp1.6"])
    with pytest.raises(ValueError):
        _core.Session("ocpp3.0", schemas=schema_sets["ocpp1.6"])  # type: ignore[arg-type]


def test_schema_set_errors(tmp_path: Path) -> None:
    with pytest.raises(_core.SchemaError):
        _core.SchemaSet("ocpp1.6", str(tmp_path))  # no schema at all
    broken = tmp_path / "extra"
    broken.mkdir()
    (broken / "Heartbeat.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(_core.SchemaError):
        _core.SchemaSet("ocpp1.6", s.schema_dir("ocpp1.6"), [str(broken)])
    assert issubclass(_core.SchemaError, ValueError)


def test_extra_dir_replaces_a_schema(tmp_path: Path) -> None:
    """An operator's errata directory wins over the official file of the same name."""
    official = json.loads(Path(s.schema_dir("ocpp1.6"), "DataTransfer.json").read_text())
    official["properties"]["vendorId"]["maxLength"] = 5
    (tmp_path / "DataTransfer.json").write_text(json.dumps(official), encoding="utf-8")
    schemas = _core.SchemaSet("ocpp1.6", s.schema_dir("ocpp1.6"), [str(tmp_path)])
    assert schemas.validate("DataTransfer", False, b'{"vendorId":"abcde"}') is None
    outcome = schemas.validate("DataTransfer", False, b'{"vendorId":"abcdef"}')
    assert outcome is not None and outcome[0] == "TypeConstraintViolation"


def test_validate_reports_code_and_detail(schema_sets: dict[str, _core.SchemaSet]) -> None:
    schemas = schema_sets["ocpp2.0.1"]
    assert schemas.validate("Heartbeat", False, b"{}") is None
    outcome = schemas.validate("BootNotification", False, b'{"reason":"PowerUp"}')
    assert outcome is not None
    code, detail = outcome
    assert code == "OccurrenceConstraintViolation" and "chargingStation" in detail


def test_verdict_strings_are_interned(new_session: SessionFactory) -> None:
    """action, error_code and drop_reason come from closed sets: reading them makes no new str."""
    session = new_session("ocpp2.0.1")
    first = session.from_charge_point(HEARTBEAT, 0.0)
    answer = session.from_csms(HEARTBEAT_RESULT, 0.5)
    assert first.action == "Heartbeat"
    assert first.action is first.action is answer.action
    bad = [session.from_charge_point(b'[2,"x%d","FlyToTheMoon",{}]' % i, 1.0) for i in range(2)]
    assert bad[0].error_code == "NotImplemented"
    assert bad[0].error_code is bad[1].error_code
    unmatched = [session.from_csms(b'[3,"nobody",{}]', 2.0) for _ in range(2)]
    assert unmatched[0].drop_reason == "unmatched_result"
    assert unmatched[0].drop_reason is unmatched[1].drop_reason
    other = new_session("ocpp2.0.1").from_charge_point(HEARTBEAT, 0.0)
    assert other.action is first.action  # one string per action for the whole process
