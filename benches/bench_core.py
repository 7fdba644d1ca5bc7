"""Micro-benchmarks of the Rust core: a CALL and its CALLRESULT, vs orjson and the ocpp library.

Each scenario is timed three ways, in the same run, on the same bytes:
- `core`: `Session.from_charge_point(call)` then `Session.from_csms(result)`: parse, direction
  check, correlation and schema validation of both frames (what the gateway does per round trip);
- `orjson`: `orjson.loads` of both frames: the floor, parsing alone, no validation;
- `ocpp_lib`: what users of the `ocpp` library run today: `ocpp.messages.unpack` (json.loads) of
  both frames and `_validate_payload` on the Call and on the CallResult.

Results are checked while timing: the core's verdicts must forward, the ocpp library raises on
an invalid payload. Run: `pytest benches -p benchmark --benchmark-only` (see benches/README.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from ocpp import messages

from ocpp_gateway import _core

OCPP_DIR = Path(messages.__file__).resolve().parent
NOW = "2025-03-14T09:26:53.589Z"


def _frames(call: list[Any], result: list[Any]) -> tuple[bytes, bytes]:
    return json.dumps(call).encode(), json.dumps(result).encode()


def _sampled(i: int) -> dict[str, Any]:
    measurands = [
        ("Energy.Active.Import.Register", "Wh", None),
        ("Power.Active.Import", "W", None),
        ("Current.Import", "A", "L1"),
        ("Current.Import", "A", "L2"),
        ("Current.Import", "A", "L3"),
        ("Voltage", "V", "L1-N"),
        ("Voltage", "V", "L2-N"),
        ("Voltage", "V", "L3-N"),
        ("SoC", "Percent", None),
        ("Temperature", "Celsius", None),
    ]
    measurand, unit, phase = measurands[i]
    value: dict[str, Any] = {
        "value": f"{1234.5 + i:.1f}",
        "context": "Sample.Periodic",
        "format": "Raw",
        "measurand": measurand,
        "location": "EV" if measurand == "SoC" else "Outlet",
        "unit": unit,
    }
    if phase:
        value["phase"] = phase
    return value


SCENARIOS: dict[str, tuple[str, str, bytes, bytes]] = {
    "1.6 Heartbeat": (
        "ocpp1.6",
        "Heartbeat",
        *_frames([2, "19223201", "Heartbeat", {}], [3, "19223201", {"currentTime": NOW}]),
    ),
    "1.6 BootNotification": (
        "ocpp1.6",
        "BootNotification",
        *_frames(
            [
                2,
                "19223202",
                "BootNotification",
                {
                    "chargePointVendor": "ExampleVendor",
                    "chargePointModel": "Wallbox-22kW-T2",
                    "chargePointSerialNumber": "EX-2025-000123",
                    "chargeBoxSerialNumber": "BOX-000123",
                    "firmwareVersion": "4.2.1-build.178",
                    "iccid": "8931440400000000001",
                    "imsi": "262011234567890",
                    "meterType": "Eastron SDM630",
                    "meterSerialNumber": "SDM-99887766",
                },
            ],
            [3, "19223202", {"status": "Accepted", "currentTime": NOW, "interval": 300}],
        ),
    ),
    "1.6 StatusNotification": (
        "ocpp1.6",
        "StatusNotification",
        *_frames(
            [
                2,
                "19223203",
                "StatusNotification",
                {
                    "connectorId": 1,
                    "errorCode": "NoError",
                    "status": "Charging",
                    "timestamp": NOW,
                    "info": "cable locked",
                    "vendorId": "org.example",
                },
            ],
            [3, "19223203", {}],
        ),
    ),
    "1.6 MeterValues (10 sampled values)": (
        "ocpp1.6",
        "MeterValues",
        *_frames(
            [
                2,
                "19223204",
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": 4711,
                    "meterValue": [
                        {"timestamp": NOW, "sampledValue": [_sampled(i) for i in range(10)]}
                    ],
                },
            ],
            [3, "19223204", {}],
        ),
    ),
    "2.0.1 TransactionEvent": (
        "ocpp2.0.1",
        "TransactionEvent",
        *_frames(
            [
                2,
                "19223205",
                "TransactionEvent",
                {
                    "eventType": "Updated",
                    "timestamp": NOW,
                    "triggerReason": "MeterValuePeriodic",
                    "seqNo": 17,
                    "transactionInfo": {
                        "transactionId": "f3a9c2d4-5b6e-4f70-8a91-b2c3d4e5f607",
                        "chargingState": "Charging",
                    },
                    "evse": {"id": 1, "connectorId": 1},
                    "meterValue": [
                        {
                            "timestamp": NOW,
                            "sampledValue": [
                                {
                                    "value": 15234.5,
                                    "measurand": "Energy.Active.Import.Register",
                                    "context": "Sample.Periodic",
                                    "unitOfMeasure": {"unit": "Wh"},
                                },
                                {"value": 7200.0, "measurand": "Power.Active.Import"},
                                {"value": 31.9, "measurand": "Current.Import", "phase": "L1"},
                                {"value": 230.4, "measurand": "Voltage", "phase": "L1-N"},
                            ],
                        }
                    ],
                },
            ],
            [3, "19223205", {"totalCost": 4.25, "chargingPriority": 0}],
        ),
    ),
}
LIB_VERSION = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
IMPLEMENTATIONS = ("orjson", "core", "ocpp_lib")


def _check_with_oracle(version: str, action: str, call: bytes, result: bytes) -> None:
    """Every benchmarked frame is valid (python-jsonschema), so all three paths do full work."""
    suffix = ("", "Response") if version == "ocpp1.6" else ("Request", "Response")
    cls = jsonschema.Draft4Validator if version == "ocpp1.6" else jsonschema.Draft6Validator
    folder = OCPP_DIR / ("v16" if version == "ocpp1.6" else "v201") / "schemas"
    for frame, end in ((call, suffix[0]), (result, suffix[1])):
        schema = json.loads((folder / f"{action}{end}.json").read_text(encoding="utf-8-sig"))
        cls(schema).validate(json.loads(frame)[-1])


for _version, _action, _call, _result in SCENARIOS.values():
    _check_with_oracle(_version, _action, _call, _result)


def core_round_trip(version: str, call: bytes, result: bytes) -> Callable[[], object]:
    session = _core.Session(version)  # type: ignore[arg-type]
    from_charge_point, from_csms = session.from_charge_point, session.from_csms

    def run() -> object:
        a = from_charge_point(call, 1.0)
        b = from_csms(result, 1.0)
        if not (a.forward and b.forward):
            raise AssertionError((a.error_detail, b.error_detail))
        return b

    return run


def orjson_round_trip(call: bytes, result: bytes) -> Callable[[], object]:
    loads = orjson.loads

    def run() -> object:
        loads(call)
        return loads(result)

    return run


def ocpp_lib_round_trip(version: str, call: bytes, result: bytes) -> Callable[[], object]:
    lib_version = LIB_VERSION[version]
    unpack, validate = messages.unpack, messages._validate_payload

    def run() -> object:
        request = unpack(call)
        validate(request, lib_version)
        response = unpack(result)
        response.action = request.action
        validate(response, lib_version)
        return response

    return run


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_round_trip(
    benchmark: Any, record_core_result: Any, scenario: str, implementation: str
) -> None:
    version, _action, call, result = SCENARIOS[scenario]
    benchmark.group = scenario
    if implementation == "core":
        run = core_round_trip(version, call, result)
    elif implementation == "orjson":
        run = orjson_round_trip(call, result)
    else:
        run = ocpp_lib_round_trip(version, call, result)
    outcome = benchmark(run)
    assert outcome is not None
    record_core_result(scenario, implementation)
