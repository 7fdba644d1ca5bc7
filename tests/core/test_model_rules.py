"""The binding of per-model rules: ModelRules, SchemaSet.check_relaxation, Session.boot_info."""

from __future__ import annotations

import pytest

from ocpp_gateway import _core

from . import _support as s

BOOT = '[2,"b1","BootNotification",{"chargePointModel":"%s","chargePointVendor":"V"}]'


def test_check_relaxation_reasons(schema_sets: dict[str, _core.SchemaSet]) -> None:
    v16 = schema_sets["ocpp1.6"]
    v201 = schema_sets["ocpp2.0.1"]
    key = "BootNotification.chargePointSerialNumber"
    assert v16.check_relaxation(key, {"max_length": 50}) is None
    reason, message = v201.check_relaxation(key, {"max_length": 50}) or ("", "")
    assert reason == "unknown_path"
    assert message.startswith(key)
    assert v16.check_relaxation("Nope.x", {"max_length": 50}) == (
        "unknown_action",
        'Nope.x: "Nope" is not an action of ocpp1.6',
    )
    reason, _ = v16.check_relaxation(key, {"max_length": 10}) or ("", "")
    assert reason == "invalid"
    response = "GetConfigurationResponse.configurationKey.value"
    assert v16.check_relaxation(response, {"extra_types": ["integer"]}) is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_len": 5}, "unknown relaxation"),
        ({"max_length": "long"}, "expected a non-negative integer"),
        ({"allow_property": False}, "expected true"),
        ({"extra_enum": "Error"}, "expected a list of strings"),
    ],
)
def test_wrong_relaxation_values_raise(
    schema_sets: dict[str, _core.SchemaSet], table: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        schema_sets["ocpp1.6"].check_relaxation("StatusNotification.errorCode", table)
    with pytest.raises(ValueError, match=message):
        _core.ModelRules(
            schema_sets["ocpp1.6"],
            {"M": (_core.Policy(), {"StatusNotification.errorCode": table})},
        )


def test_model_rules_name_models_and_rules(schema_sets: dict[str, _core.SchemaSet]) -> None:
    rules = _core.ModelRules(
        schema_sets["ocpp1.6"],
        {
            "B": (_core.Policy("observe"), {}),
            "A": (
                _core.Policy(),
                {
                    "StatusNotification.errorCode": {"extra_enum": ["Error"]},
                    "MeterValues.meterValue.sampledValue": {"min_items": 0},
                },
            ),
        },
    )
    assert rules.version == "ocpp1.6"
    assert rules.models() == ["A", "B"]
    assert rules.rules("A") == [
        "MeterValues.meterValue.sampledValue",
        "StatusNotification.errorCode",
    ]
    assert rules.rules("B") == []
    assert rules.rules("C") == []
    with pytest.raises(ValueError, match=r"^A: StatusNotification\.errorCode: "):
        _core.ModelRules(
            schema_sets["ocpp1.6"],
            {"A": (_core.Policy(), {"StatusNotification.errorCode": {"max_length": 5}})},
        )


def test_session_follows_the_boot_notification(schema_sets: dict[str, _core.SchemaSet]) -> None:
    rules = _core.ModelRules(schema_sets["ocpp1.6"], {"Quiet": (_core.Policy("off"), {})})
    session = _core.Session("ocpp1.6", model_rules=rules)
    assert session.model_rules is rules
    assert session.boot_info is None
    assert session.model is None
    verdict = session.from_charge_point((BOOT % "Quiet").encode(), 1.0)
    assert verdict.forward
    assert session.boot_info == ("V", "Quiet", None)
    assert session.model == "Quiet"
    bad = b'[2,"s1","StatusNotification",{"connectorId":0,"errorCode":"Error","status":"Faulted"}]'
    assert session.from_charge_point(bad, 2.0).forward


def test_rules_over_other_schemas_are_refused(schema_sets: dict[str, _core.SchemaSet]) -> None:
    rules = _core.ModelRules(schema_sets["ocpp1.6"], {})
    other = _core.SchemaSet("ocpp1.6", s.schema_dir("ocpp1.6"))
    with pytest.raises(ValueError, match="another SchemaSet"):
        _core.Session("ocpp1.6", schemas=other, model_rules=rules)
    with pytest.raises(ValueError, match=r"ocpp1\.6, not ocpp2\.0\.1"):
        _core.Session("ocpp2.0.1", model_rules=rules)
