"""Write tests/hostile/corpus.json: hostile frames with the answer the gateway must give.

Run from the repository root: `python3 tests/hostile/make_corpus.py`. Edit this script, not the
JSON. Each case is sent by a charge point over a live connection to a real gateway (local
responder backend); `expect` is one of:

- {"reply": "CALLERROR", "error_code": C, "unique_id": U}: the gateway answers with a CALLERROR
  of code C (wire spelling of the version); U is the UniqueId it must carry, or null when the
  sender's id cannot be read (any id, "-1" recommended, is then accepted).
- {"reply": null}: no answer at all (the frame is dropped); checked by sending a Heartbeat right
  after and seeing its CALLRESULT first.
- {"close": CODE}: the gateway closes the connection with that WebSocket close code.
- {"one_of": [E1, E2, ...]}: any of those answers (only where the specification leaves a choice).

Payload cases are derived from the official schemas in the pinned `ocpp` package and the valid
payloads of tests/fixtures/payloads (one mutation each: drop a required property, wrong JSON type,
string over maxLength, value outside an enum, a property the schema does not allow).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import ocpp

V16, V201, V21 = "ocpp1.6", "ocpp2.0.1", "ocpp2.1"
VERSIONS = (V16, V201, V21)
ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "corpus.json"
SCHEMA_DIRS = {V16: "v16", V201: "v201", V21: "v21"}

CODES = {
    "framework": {V16: "FormationViolation", V201: "RpcFrameworkError", V21: "RpcFrameworkError"},
    "not_implemented": dict.fromkeys(VERSIONS, "NotImplemented"),
    "not_supported": dict.fromkeys(VERSIONS, "NotSupported"),
    "occurrence": {
        V16: "OccurenceConstraintViolation",
        V201: "OccurrenceConstraintViolation",
        V21: "OccurrenceConstraintViolation",
    },
    "type": dict.fromkeys(VERSIONS, "TypeConstraintViolation"),
    "property": dict.fromkeys(VERSIONS, "PropertyConstraintViolation"),
    "format": {V16: "FormationViolation", V201: "FormatViolation", V21: "FormatViolation"},
}

# Actions a charge point sends (payload mutations) and actions only a CSMS may send.
CP_ACTIONS = {
    V16: [
        "Authorize",
        "BootNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
    ],
    V201: [
        "Authorize",
        "BootNotification",
        "FirmwareStatusNotification",
        "LogStatusNotification",
        "MeterValues",
        "NotifyEvent",
        "SecurityEventNotification",
        "StatusNotification",
        "TransactionEvent",
    ],
    V21: [
        "Authorize",
        "BootNotification",
        "FirmwareStatusNotification",
        "LogStatusNotification",
        "MeterValues",
        "SecurityEventNotification",
        "StatusNotification",
        "TransactionEvent",
    ],
}
CSMS_ONLY = {
    V16: ["Reset", "RemoteStartTransaction", "ChangeConfiguration", "ClearCache"],
    V201: ["Reset", "RequestStartTransaction", "SetVariables", "ClearCache"],
    V21: ["Reset", "RequestStartTransaction", "SetVariables", "ClearCache"],
}


def reply(version: str, kind: str, unique_id: str | None) -> dict[str, Any]:
    return {"reply": "CALLERROR", "error_code": CODES[kind][version], "unique_id": unique_id}


DROP: dict[str, Any] = {"reply": None}


def text(case_id: str, version: str, frame: str, expect: dict[str, Any]) -> dict[str, Any]:
    return {"id": case_id, "version": version, "text": frame, "expect": expect}


def raw(case_id: str, version: str, data: bytes, expect: dict[str, Any]) -> dict[str, Any]:
    """A text frame whose bytes are not valid UTF-8 (sent as-is)."""
    b64 = base64.b64encode(data).decode()
    return {"id": case_id, "version": version, "text_b64": b64, "expect": expect}


def framework_cases(v: str) -> list[dict[str, Any]]:
    def fw(uid: str | None = None) -> dict[str, Any]:
        return reply(v, "framework", uid)

    long_id = "x" * 37
    cases = [
        text("empty", v, "", fw()),
        text("whitespace", v, "   ", fw()),
        text("open-bracket", v, "[", fw()),
        text("truncated-call", v, '[2,"t1","Heartbeat",{}', fw()),
        text("object", v, "{}", fw()),
        text("null", v, "null", fw()),
        text("number", v, "42", fw()),
        text("string", v, '"hello"', fw()),
        text("true", v, "true", fw()),
        text("not-json", v, "hello world", fw()),
        text("empty-array", v, "[]", fw()),
        text("only-type", v, "[2]", fw()),
        text("call-two-elements", v, '[2,"t1"]', fw("t1")),
        text("call-three-elements", v, '[2,"t1","Heartbeat"]', fw("t1")),
        text("call-five-elements", v, '[2,"t1","Heartbeat",{},{}]', fw("t1")),
        text("type-as-string", v, '["2","t1","Heartbeat",{}]', fw()),
        text("type-as-float", v, '[2.5,"t1","Heartbeat",{}]', fw()),
        text("type-as-null", v, '[null,"t1","Heartbeat",{}]', fw()),
        text("type-as-array", v, '[[2],"t1","Heartbeat",{}]', fw()),
        text("unique-id-number", v, '[2,17,"Heartbeat",{}]', fw()),
        text("unique-id-null", v, '[2,null,"Heartbeat",{}]', fw()),
        text("unique-id-object", v, '[2,{"a":1},"Heartbeat",{}]', fw()),
        text("unique-id-37-chars", v, f'[2,"{long_id}","Heartbeat",{{}}]', fw()),
        text("unique-id-huge", v, '[2,"' + "u" * 4000 + '","Heartbeat",{}]', fw()),
        text("action-number", v, '[2,"t1",5,{}]', fw("t1")),
        text("action-null", v, '[2,"t1",null,{}]', fw("t1")),
        text("payload-array", v, '[2,"t1","Heartbeat",[]]', fw("t1")),
        text("payload-string", v, '[2,"t1","Heartbeat","{}"]', fw("t1")),
        text("payload-null", v, '[2,"t1","Heartbeat",null]', fw("t1")),
        text("payload-number", v, '[2,"t1","Heartbeat",1]', fw("t1")),
        text("trailing-garbage", v, '[2,"t1","Heartbeat",{}] xyz', fw()),
        text("two-arrays", v, '[2,"t1","Heartbeat",{}][2,"t2","Heartbeat",{}]', fw()),
        text("single-quotes", v, "[2,'t1','Heartbeat',{}]", fw()),
        text("trailing-comma", v, '[2,"t1","Heartbeat",{},]', fw()),
        text("nan-literal", v, '[2,"t1","Heartbeat",{"x":NaN}]', fw()),
        text("infinity-literal", v, '[2,"t1","Heartbeat",{"x":Infinity}]', fw()),
        text("comment", v, '[2,"t1","Heartbeat",{}] // hi', fw()),
        text("bad-escape", v, '[2,"t\\q","Heartbeat",{}]', fw()),
        text("unterminated-string", v, '[2,"t1,"Heartbeat",{}]', fw()),
        text("control-char-in-string", v, '[2,"t\x011","Heartbeat",{}]', fw()),
        text("deep-array", v, "[" * 20000 + "]" * 20000, fw()),
        text(
            "deep-payload",
            v,
            '[2,"t1","Heartbeat",' + '{"a":' * 5000 + "{}" + "}" * 5000 + "]",
            # Deeper than the core's JSON depth limit (128): "not JSON", so the UniqueId is not
            # read and "-1" is answered (tests/fixtures/frames.json convention). A gateway
            # without a depth limit would answer the schema's additionalProperties instead.
            {"one_of": [fw(), reply(v, "format", "t1")]},
        ),
        text("bom-prefix", v, '\ufeff[2,"t1","Heartbeat",{}]', fw()),
        raw("invalid-utf8", v, b'[2,"t1","Heartbeat",{"x":"\xff\xfe"}]', fw()),
        raw("overlong-utf8", v, b'[2,"t1","Heartbeat",{"x":"\xc0\xaf"}]', fw()),
        raw("nul-bytes", v, b"\x00\x00\x00\x00", fw()),
    ]
    return [dict(c, id=f"{v}/framework/{c['id']}") for c in cases]


def message_type_cases(v: str) -> list[dict[str, Any]]:
    def unknown(uid: str | None) -> dict[str, Any]:
        if v == V201:
            return reply(v, "framework", uid) | {"error_code": "MessageTypeNotSupported"}
        return DROP

    cases = [
        text("type-0", v, '[0,"m1","Heartbeat",{}]', unknown("m1")),
        text("type-1", v, '[1,"m1","Heartbeat",{}]', unknown("m1")),
        text("type-7", v, '[7,"m1","Heartbeat",{}]', unknown("m1")),
        text("type-99", v, '[99,"m1",{}]', unknown("m1")),
        text("type-negative", v, '[-2,"m1","Heartbeat",{}]', unknown("m1")),
        text("unmatched-result", v, '[3,"never-sent",{}]', DROP),
        text("unmatched-error", v, '[4,"never-sent","GenericError","",{}]', DROP),
        text("unmatched-result-long-id", v, '[3,"' + "z" * 36 + '",{"a":1}]', DROP),
    ]
    if v == V21:
        cases += [
            text("send-unknown-action", v, '[6,"s1","NoSuchAction",{}]', DROP),
            text("send-bad-payload", v, '[6,"s1","NotifyPeriodicEventStream",{"x":1}]', DROP),
            text("callresulterror-unmatched", v, '[5,"never-sent","GenericError","",{}]', DROP),
        ]
    else:
        cases += [
            text("type-5", v, '[5,"m5","GenericError","",{}]', unknown("m5")),
            text("type-6", v, '[6,"m6","Heartbeat",{}]', unknown("m6")),
        ]
    return [dict(c, id=f"{v}/message-type/{c['id']}") for c in cases]


def action_cases(v: str) -> list[dict[str, Any]]:
    cases = [
        text("unknown-action", v, '[2,"a1","LaunchRockets",{}]', reply(v, "not_implemented", "a1")),
        text("lowercase-action", v, '[2,"a2","heartbeat",{}]', reply(v, "not_implemented", "a2")),
        text("action-with-space", v, '[2,"a3","Heartbeat ",{}]', reply(v, "not_implemented", "a3")),
        text(
            "response-name-as-action",
            v,
            '[2,"a4","HeartbeatResponse",{}]',
            reply(v, "not_implemented", "a4"),
        ),
        text(
            "path-like-action",
            v,
            '[2,"a5","../../etc/passwd",{}]',
            reply(v, "not_implemented", "a5"),
        ),
        text(
            "long-action", v, '[2,"a6","' + "A" * 5000 + '",{}]', reply(v, "not_implemented", "a6")
        ),
    ]
    for i, action in enumerate(CSMS_ONLY[v]):
        cases.append(
            text(
                f"wrong-direction-{action}",
                v,
                f'[2,"d{i}","{action}",{{}}]',
                reply(v, "not_supported", f"d{i}"),
            )
        )
    return [dict(c, id=f"{v}/action/{c['id']}") for c in cases]


def _schema(v: str, action: str) -> dict[str, Any]:
    base = Path(os.path.dirname(ocpp.__file__)) / SCHEMA_DIRS[v] / "schemas"
    name = f"{action}.json" if v == V16 else f"{action}Request.json"
    schema: dict[str, Any] = json.loads((base / name).read_text())
    return schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/definitions/"), ref
        node = schema["definitions"][ref.split("/")[-1]]
    return node


def payload_cases(v: str) -> list[dict[str, Any]]:
    fixtures = json.loads((ROOT / "tests" / "fixtures" / "payloads" / f"{v}.json").read_text())
    cases: list[dict[str, Any]] = []
    for action in CP_ACTIONS[v]:
        schema = _schema(v, action)
        valid = fixtures[action]["request"]
        props: dict[str, Any] = schema.get("properties", {})
        n = 0

        def add(kind: str, label: str, payload: dict[str, Any], action: str = action) -> None:
            nonlocal n
            n += 1
            uid = f"p{n}-{action[:20]}"
            frame = json.dumps([2, uid, action, payload], ensure_ascii=False)
            cases.append(text(f"{action}/{label}", v, frame, reply(v, kind, uid)))

        required = [r for r in schema.get("required", []) if r in valid]
        if required:
            p = dict(valid)
            del p[required[0]]
            add("occurrence", f"missing-{required[0]}", p)
        if schema.get("additionalProperties") is False:
            add("format", "extra-property", dict(valid, notInTheSchema=1))
        for name in valid:
            node = _resolve(schema, props.get(name, {}))
            if node.get("type") == "string" and "enum" not in node:
                add("type", f"{name}-as-number", dict(valid, **{name: 12345}))
                if "maxLength" in node:
                    add(
                        "type",
                        f"{name}-too-long",
                        dict(valid, **{name: "L" * (node["maxLength"] + 1)}),
                    )
                break
        for name in valid:
            node = _resolve(schema, props.get(name, {}))
            if "enum" in node:
                add("property", f"{name}-not-in-enum", dict(valid, **{name: "NotAnEnumValue"}))
                add("type", f"{name}-enum-as-bool", dict(valid, **{name: True}))
                break
        for name in valid:
            node = _resolve(schema, props.get(name, {}))
            if node.get("type") == "integer":
                add("type", f"{name}-integer-as-string", dict(valid, **{name: "7"}))
                add("type", f"{name}-integer-as-float", dict(valid, **{name: 7.5}))
                break
        for name in valid:
            node = _resolve(schema, props.get(name, {}))
            if node.get("type") == "object":
                add("type", f"{name}-object-as-array", dict(valid, **{name: []}))
                break
    return [dict(c, id=f"{v}/payload/{c['id']}") for c in cases]


def main() -> None:
    cases: list[dict[str, Any]] = []
    for v in VERSIONS:
        cases += framework_cases(v)
        cases += message_type_cases(v)
        cases += action_cases(v)
        cases += payload_cases(v)
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    OUT.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} cases to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
