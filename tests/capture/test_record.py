"""Open OCPP Trace records of real Session verdicts: fields, `raw` byte for byte, the verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from time import monotonic

import orjson

from ocpp_gateway.capture.record import timestamp
from ocpp_gateway.config import load_config
from ocpp_gateway.runtime import Runtime

from ._support import check_record, record_of, session

BOOT = b'[2,"b-1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
FIELD_FRAMES = Path(__file__).resolve().parents[1] / "fixtures" / "field_frames.json"


def test_a_forwarded_call_and_its_result_keep_their_bytes_and_fields() -> None:
    s = session()
    call = record_of("cp_to_csms", BOOT, s.from_charge_point(BOOT, monotonic()))
    assert len(call) == 1
    assert call[0]["raw"].encode() == BOOT
    assert call[0]["messageType"] == "CALL" and call[0]["action"] == "BootNotification"
    assert call[0]["direction"] == "cp-to-csms" and call[0]["ocppVersion"] == "1.6"
    assert call[0]["payload"] == {"chargePointVendor": "V", "chargePointModel": "M"}
    assert call[0]["meta"]["verdict"] == "forwarded"
    assert call[0]["meta"]["source"] == "charge_point"
    answer = b'[3, "b-1", {"status":"Accepted","currentTime":"2026-01-01T00:00:00Z","interval":5}]'
    result = record_of("csms_to_cp", answer, s.from_csms(answer, monotonic()))
    assert result[0]["raw"].encode() == answer  # spacing kept: the bytes, not a re-encoding
    assert result[0]["messageType"] == "CALLRESULT" and result[0]["messageId"] == "b-1"
    assert result[0]["action"] == "BootNotification"  # the action of the call it answers
    assert result[0]["meta"]["source"] == "backend"


def test_a_refused_call_names_the_callerror_and_records_the_gateways_answer() -> None:
    s = session()
    bad = b'[2,"b-2","BootNotification",{"chargePointVendor":"V"}]'  # model missing
    found = record_of("cp_to_csms", bad, s.from_charge_point(bad, monotonic()))
    assert [r["meta"]["verdict"] for r in found] == ["answered", "sent"]
    assert found[0]["meta"]["errorCode"] == "OccurenceConstraintViolation"
    reply = found[1]
    assert reply["direction"] == "csms-to-cp" and reply["meta"]["source"] == "gateway"
    assert reply["messageType"] == "CALLERROR" and reply["messageId"] == "b-2"
    assert reply["error"]["code"] == "OccurenceConstraintViolation"


def test_an_unmatched_result_is_dropped_with_its_reason() -> None:
    s = session()
    stray = b'[3,"nobody-asked",{}]'
    found = record_of("csms_to_cp", stray, s.from_csms(stray, monotonic()))
    assert found[0]["meta"] == found[0]["meta"] | {"verdict": "dropped"}
    assert found[0]["meta"]["reason"] == "unmatched_result"
    assert len(found) == 1


def test_a_result_failing_its_schema_is_recorded_with_its_replacement() -> None:
    s = session()
    s.from_charge_point(BOOT, monotonic())
    bad = b'[3,"b-1",{"status":"Maybe","currentTime":"2026-01-01T00:00:00Z","interval":5}]'
    found = record_of("csms_to_cp", bad, s.from_csms(bad, monotonic()))
    assert found[0]["meta"]["verdict"] == "replaced"
    assert found[0]["meta"]["errorCode"] == "PropertyConstraintViolation"
    assert found[1]["direction"] == "csms-to-cp" and found[1]["messageType"] == "CALLERROR"


def test_a_malformed_frame_keeps_its_bytes() -> None:
    s = session("ocpp2.0.1")
    junk = b'[2,"x",'
    found = record_of("cp_to_csms", junk, s.from_charge_point(junk, monotonic()), "ocpp2.0.1")
    assert found[0]["raw"].encode() == junk and found[0]["meta"]["malformed"] is True
    assert found[1]["error"]["code"] == "RpcFrameworkError"


def test_invalid_utf8_is_kept_in_base64() -> None:
    s = session()
    junk = b'[2,"x","Heartbeat",{"a":"\xff"}]'
    found = record_of("cp_to_csms", junk, s.from_charge_point(junk, monotonic()))
    import base64

    assert base64.b64decode(found[0]["meta"]["rawBase64"]) == junk


def test_a_relaxed_payload_names_the_rule(tmp_path: Path) -> None:
    frames = json.loads(FIELD_FRAMES.read_text(encoding="utf-8"))["frames"]
    evlink = next(f for f in frames if f["id"] == "schneider-evlink-boot-serials")
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[validation.models."{evlink["model"]}".relax]\n'
        '"BootNotification.chargeBoxSerialNumber" = { max_length = 40 }\n'
        '"BootNotification.chargePointSerialNumber" = { max_length = 40 }\n',
        encoding="utf-8",
    )
    s = Runtime(load_config(str(config), {}, {})).new_session("ocpp1.6")
    frame = evlink["frame"].encode()
    found = record_of("cp_to_csms", frame, s.from_charge_point(frame, monotonic()))
    assert found[0]["meta"]["verdict"] == "relaxed"
    assert found[0]["meta"]["rule"].startswith("BootNotification.charge")
    assert found[0]["raw"].encode() == frame


def test_2_1_send_and_callresulterror_are_recorded_under_the_formats_kinds() -> None:
    s = session("ocpp2.1")
    send = (
        b'[6,"s-1","NotifyPeriodicEventStream",{"id":1,"pending":0,'
        b'"basetime":"2026-01-01T00:00:00Z","data":[{"t":1,"v":"1"}]}]'
    )
    found = record_of("cp_to_csms", send, s.from_charge_point(send, monotonic()), "ocpp2.1")
    assert found[0]["messageType"] == "CALL" and found[0]["meta"]["messageTypeId"] == 6
    assert found[0]["raw"].encode() == send


def test_timestamps_are_utc_with_milliseconds() -> None:
    assert timestamp(0.5) == "1970-01-01T00:00:00.500Z"
    record = record_of("cp_to_csms", BOOT, session().from_charge_point(BOOT, monotonic()))[0]
    assert record["timestamp"] == "2025-12-06T05:46:40.250Z"
    check_record(orjson.loads(orjson.dumps(record)))
