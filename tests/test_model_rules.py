"""Model tables with relaxations: loaded backwards-compatibly, checked with their keys, compiled."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocpp_gateway import _core
from ocpp_gateway.cli import main
from ocpp_gateway.config import load_config
from ocpp_gateway.errors import ConfigError
from ocpp_gateway.model_rules import (
    build_model_rules,
    check_relaxations,
    model_policy,
    relaxations,
    schema_sets,
)
from ocpp_gateway.preflight import check_config

GOOD = """
[validation]
default = "enforce"
overrides = { DataTransfer = "off" }
versions = { "ocpp2.0.1" = { default = "observe" } }

[validation.models."EVlink Smart Wallbox"]
default = "enforce"
MeterValues = "observe"

[validation.models."EVlink Smart Wallbox".relax]
"BootNotification.chargeBoxSerialNumber" = { max_length = 40 }
"BootNotification.chargePointSerialNumber" = { max_length = 30 }
"BootNotification.chargingStation.serialNumber" = { max_length = 40 }
"StatusNotification.errorCode" = { extra_enum = ["Error"] }

[validation.models."Old Style"]
default = "observe"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_old_model_tables_still_load(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[validation]\nmodels = { "X" = { default = "observe" } }\n'))
    assert cfg.validation.models == {"X": {"default": "observe"}}
    assert relaxations(cfg.validation.models["X"]) == {}


def test_relax_tables_load_check_and_compile(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert check_config(path) == []
    cfg = load_config(path)
    table = cfg.validation.models["EVlink Smart Wallbox"]
    assert relaxations(table)["StatusNotification.errorCode"] == {"extra_enum": ("Error",)}
    policy = model_policy(cfg.validation, "ocpp1.6", "EVlink Smart Wallbox")
    assert policy.mode("MeterValues", "cp_to_csms") == "observe"
    assert policy.mode("DataTransfer", "cp_to_csms") == "off"
    assert policy.mode("Heartbeat", "cp_to_csms") == "enforce"
    old = model_policy(cfg.validation, "ocpp2.0.1", "Old Style")
    assert old.mode("Heartbeat", "cp_to_csms") == "observe"
    sets = schema_sets(cfg.validation)
    rules = build_model_rules(cfg.validation, sets)
    assert set(rules) == {"ocpp1.6", "ocpp2.0.1", "ocpp2.1"}
    # Each version keeps the keys it has.
    assert rules["ocpp1.6"].rules("EVlink Smart Wallbox") == [
        "BootNotification.chargeBoxSerialNumber",
        "BootNotification.chargePointSerialNumber",
        "StatusNotification.errorCode",
    ]
    assert rules["ocpp2.0.1"].rules("EVlink Smart Wallbox") == [
        "BootNotification.chargingStation.serialNumber"
    ]
    session = _core.Session("ocpp1.6", model_rules=rules["ocpp1.6"])
    boot = (
        '[2,"1","BootNotification",{"chargeBoxSerialNumber":"' + "B" * 33 + '",'
        '"chargePointModel":"EVlink Smart Wallbox","chargePointVendor":"Schneider Electric"}]'
    )
    verdict = session.from_charge_point(boot.encode(), 1.0)
    assert verdict.forward
    assert verdict.relaxed == "BootNotification.chargeBoxSerialNumber"


@pytest.mark.parametrize(
    ("relax", "expected"),
    [
        ('"Bootnotification.chargePointModel" = { max_length = 30 }', "no OCPP version has it"),
        ('"BootNotification.model" = { max_length = 30 }', "no OCPP version has it"),
        ('"BootNotification.chargePointModel" = { max_length = 10 }', "not larger"),
        ('"StatusNotification.errorCode" = { max_length = 30 }', "no maxLength"),
        ('"StatusNotification.errorCode" = { extra_num = ["Error"] }', "unknown relaxation"),
        ('"StatusNotification.errorCode" = { extra_enum = "Error" }', "a list of strings"),
        ('"StatusNotification.errorCode" = "Error"', "expected a table"),
        ('"StatusNotification" = { max_length = 3 }', "expected Action.member"),
    ],
)
def test_check_config_names_the_wrong_key(tmp_path: Path, relax: str, expected: str) -> None:
    text = f'[validation.models."M".relax]\n{relax}\n'
    errors = check_config(write(tmp_path, text))
    assert len(errors) == 1, errors
    assert errors[0].startswith("validation.models.M.relax."), errors
    assert expected in errors[0], errors


def test_a_relax_table_that_is_not_a_table(tmp_path: Path) -> None:
    errors = check_config(write(tmp_path, '[validation.models."M"]\nrelax = "all"\n'))
    assert errors == ["validation.models.M.relax: expected a table"]


def test_build_refuses_what_check_refuses(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, '[validation.models."M".relax]\n"Nope.x" = { max_length = 3 }\n')
    )
    assert check_relaxations(cfg.validation)
    with pytest.raises(ConfigError, match=r"validation\.models\.M\.relax\.Nope\.x"):
        build_model_rules(cfg.validation, schema_sets(cfg.validation))


def test_no_models_no_rules(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "port = 9000\n"))
    assert build_model_rules(cfg.validation, schema_sets(cfg.validation)) == {}


def test_check_config_command_reports_relaxations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[validation.models."M".relax]\n"Nope.x" = { max_length = 3 }\n')
    assert main(["check-config", path]) == 1
    assert "validation.models.M.relax.Nope.x" in capsys.readouterr().out


def test_environment_json_tables(tmp_path: Path) -> None:
    env = {
        "OCPP_GATEWAY_VALIDATION__MODELS": (
            '{"M": {"default": "observe", "relax": '
            '{"StatusNotification.errorCode": {"extra_enum": ["Error"]}}}}'
        )
    }
    cfg = load_config(None, env=env)
    assert relaxations(cfg.validation.models["M"]) == {
        "StatusNotification.errorCode": {"extra_enum": ("Error",)}
    }
    assert check_relaxations(cfg.validation) == []


def test_observe_flag_sets_the_default(tmp_path: Path) -> None:
    from ocpp_gateway.cli import _overrides, _serve_parser

    args = _serve_parser().parse_args(["--observe"])
    cfg = load_config(None, env={}, overrides=_overrides(args))
    assert cfg.validation.default == "observe"
    args = _serve_parser().parse_args([])
    cfg = load_config(None, env={}, overrides=_overrides(args))
    assert cfg.validation.default == "enforce"


def test_the_readme_configuration_example_checks(tmp_path: Path) -> None:
    """The TOML example of the README's configuration section, model tables included."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```toml")[1:]]
    block = next(b for b in blocks if "[validation.models." in b)
    assert block.lstrip().startswith("host = ")
    text = block.replace("/var/lib/ocpp-gateway/violations.json", str(tmp_path / "v.json"))
    text = text.replace('journal = "frames.sqlite3"', f'journal = "{tmp_path / "j.sqlite3"}"')
    errors = check_config(write(tmp_path, text))
    assert errors == []
    cfg = load_config(write(tmp_path, text))
    assert cfg.validation.violation_log == str(tmp_path / "v.json")
    rules = build_model_rules(cfg.validation, schema_sets(cfg.validation))
    assert "StatusNotification.errorCode" in rules["ocpp1.6"].rules("EVlink Smart Wallbox")
