"""The rollout log: bounded, redacted, written atomically, printed, turned into model tables."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ocpp_gateway import _core
from ocpp_gateway.cli import main
from ocpp_gateway.config import load_config
from ocpp_gateway.model_rules import build_model_rules, schema_sets
from ocpp_gateway.preflight import check_config
from ocpp_gateway.violations import UNKNOWN_MODEL, ViolationLog, redact
from ocpp_gateway.violations.report import model_tables, table
from ocpp_gateway.violations.store import dump, dump_if_changed, load

FIXTURES = Path(__file__).parent / "fixtures"
BOOT = '[2,"boot","BootNotification",{"chargePointModel":"%s","chargePointVendor":"V"}]'


def corpus() -> list[dict[str, Any]]:
    frames = json.loads((FIXTURES / "field_frames.json").read_text(encoding="utf-8"))["frames"]
    return [f for f in frames if f["version"] == "ocpp1.6"]


def observe_corpus(log: ViolationLog, rules: _core.ModelRules | None = None) -> None:
    """Every corpus frame through an observing Session, each violation into the log."""
    policy = _core.Policy("observe")
    for entry in corpus():
        session = _core.Session("ocpp1.6", policy=policy, model_rules=rules)
        if entry["action"] != "BootNotification":
            boot = (BOOT % f"{entry['brand']} {entry['model'] or ''}".strip()).encode()
            verdict = session.from_charge_point(boot, 0.0)
            assert verdict.forward
        if entry["result"]:
            assert session.from_csms(entry["call"].encode(), 0.5).forward
        frame = entry["frame"].encode()
        verdict = session.from_charge_point(frame, 1.0)
        assert verdict.forward
        boot_info = session.boot_info
        assert boot_info is not None
        log.record_boot(session.version, boot_info[1], boot_info[2])
        log.record_verdict(session, verdict, "cp_to_csms", frame)


def test_redaction_keeps_lengths_and_masks_identifiers() -> None:
    payload = {
        "chargePointSerialNumber": "3N123456789F2S1B1234567890",
        "idToken": {"idToken": "04A1B2C3D4", "type": "ISO14443"},
        "meterValue": [{"sampledValue": [{"value": "12"}]}],
        "configurationKey": [{"key": "AuthorizationKey", "value": "s3cr3t"}],
        "idTag": "TAG",
    }
    out = redact(payload)
    assert out["chargePointSerialNumber"] == "x" * 26
    assert out["idToken"] == {"idToken": "x" * 10, "type": "xxxxxxxx"}
    assert out["meterValue"] == payload["meterValue"]
    assert out["configurationKey"] == [{"key": "AuthorizationKey", "value": "xxxxxx"}]
    assert out["idTag"] == "xxx"


def test_the_corpus_in_observe_mode(tmp_path: Path) -> None:
    log = ViolationLog()
    observe_corpus(log)
    keys = {(e.model, e.action, e.response, e.path, e.keyword) for e in log.entries.values()}
    evlink_key = ("EVlink Smart Wallbox", "BootNotification", False, "chargeBoxSerialNumber")
    assert (*evlink_key, "maxLength") in keys
    assert ("Legrand GreenUp", "StatusNotification", False, "errorCode", "enum") in keys
    assert ("Scame Wallbox", "GetConfiguration", True, "configurationKey.value", "type") in keys
    evlink = [e for e in log.entries.values() if e.model == "EVlink Smart Wallbox"]
    assert {e.firmware for e in evlink} == {"3.4.0.9", "3.4.0.2"}
    for e in evlink:
        assert e.count == 1
        assert e.lengths == (33, 33)
        sample = json.loads(e.sample)
        assert sample[3]["chargeBoxSerialNumber"] == "x" * 33
        assert "EVB" not in e.sample
    text_table = table(log)
    assert text_table.splitlines()[0].split() == [
        "COUNT",
        "MODEL",
        "FIRMWARE",
        "VERSION",
        "ACTION",
        "PATH",
        "KEYWORD",
        "CODE",
    ]
    assert "GetConfigurationResponse" in text_table
    assert "models seen without violations:" in text_table
    assert "Wall Box Chargers" not in text_table  # models are chargePointModel values
    assert "PLP2-M-2-4" in text_table.splitlines()[-1]


def rules_from(tmp_path: Path, text: str, default: str) -> tuple[Any, _core.ModelRules]:
    """Paste model tables into a configuration; check it and compile its 1.6 model rules."""
    config = tmp_path / "gateway.toml"
    config.write_text(f'[validation]\ndefault = "{default}"\n\n{text}', encoding="utf-8")
    assert check_config(str(config)) == []
    cfg = load_config(str(config))
    return cfg, build_model_rules(cfg.validation, schema_sets(cfg.validation))["ocpp1.6"]


def test_model_tables_make_the_corpus_pass(tmp_path: Path) -> None:
    log = ViolationLog()
    observe_corpus(log)
    text = model_tables(log)
    parsed = tomllib.loads(text)
    models = parsed["validation"]["models"]
    evlink = models["EVlink Smart Wallbox"]["relax"]
    assert evlink["BootNotification.chargeBoxSerialNumber"] == {"max_length": 33}
    assert models["Legrand GreenUp"]["relax"]["StatusNotification.errorCode"] == {
        "extra_enum": ["Error"]
    }
    assert models["Vestel EVC04"]["relax"]["MeterValues.meterValue.sampledValue"] == {
        "min_items": 0
    }
    # Only what the official schema does not accept already.
    assert models["Alfen Eve Pro"]["relax"]["MeterValues.meterValue.sampledValue.context"] == {
        "extra_enum": ["CurrentMax"]
    }
    assert models["OpenEVSE"]["relax"]["MeterValues.meterValue.sampledValue.value"] == {
        "extra_types": ["integer", "number"]
    }
    assert models["Huawei SCharger"]["relax"]["MeterValues.meterValue"] == {
        "extra_types": ["object"]
    }
    # Round two: with those tables in force (still observing), a frame that broke two rules
    # shows its second one; generating again extends the configured tables.
    cfg, rules = rules_from(tmp_path, text, "observe")
    second = ViolationLog()
    observe_corpus(second, rules)
    assert {(e.model, e.path) for e in second.entries.values()} == {
        ("EVlink Smart Wallbox", "chargePointSerialNumber")
    }
    text = model_tables(second, cfg.validation.models)
    evlink = tomllib.loads(text)["validation"]["models"]["EVlink Smart Wallbox"]["relax"]
    assert evlink == {
        "BootNotification.chargeBoxSerialNumber": {"max_length": 33},
        "BootNotification.chargePointSerialNumber": {"max_length": 26},
    }
    # Enforcing with the final tables, every corpus frame passes and nothing is logged.
    _, rules = rules_from(tmp_path, text, "enforce")
    third = ViolationLog()
    observe_corpus(third, rules)
    assert len(third) == 0


def test_the_log_is_bounded() -> None:
    log = ViolationLog(max_entries=2)
    for i in range(5):
        counted = log.record(
            version="ocpp1.6",
            direction="cp_to_csms",
            message_type=2,
            action="DataTransfer",
            path=f"vendor{i}",
            keyword="additionalProperties",
            error_code="FormationViolation",
            frame=b'[2,"1","DataTransfer",{}]',
            model="M",
        )
        assert counted == (i < 2)
    assert len(log) == 2
    assert log.overflow == 3
    assert not log.record(
        version="ocpp1.6",
        direction="cp_to_csms",
        message_type=0,
        action=None,
        path=None,
        keyword=None,
        error_code="FormationViolation",
        frame=b"not json",
    )
    long = ViolationLog(max_sample_chars=20)
    long.record(
        version="ocpp1.6",
        direction="cp_to_csms",
        message_type=2,
        action="DataTransfer",
        path="data",
        keyword="type",
        error_code="TypeConstraintViolation",
        frame=b'[2,"1","DataTransfer",{"vendorId":"v","data":{"long":"' + b"y" * 100 + b'"}}]',
    )
    (entry,) = long.entries.values()
    assert len(entry.sample) == 21
    assert entry.model == UNKNOWN_MODEL


def test_dump_is_atomic_and_loads_back(tmp_path: Path) -> None:
    log = ViolationLog()
    observe_corpus(log)
    path = tmp_path / "violations.json"
    assert dump_if_changed(log, str(path))
    assert not dump_if_changed(log, str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["violations.json"]
    loaded = load(str(path))
    assert table(loaded) == table(log)
    assert model_tables(loaded) == model_tables(log)
    # A rewrite replaces the file by rename: a reader holding the old one still reads it whole.
    with open(path, "rb") as old:
        before = os.fstat(old.fileno()).st_ino
        log.record_boot("ocpp1.6", "New Model", "1.0")
        assert dump_if_changed(log, str(path))
        assert json.loads(old.read())["format"] == 1
    assert os.stat(path).st_ino != before


def test_merge_adds_counts(tmp_path: Path) -> None:
    a, b = ViolationLog(), ViolationLog()
    observe_corpus(a)
    observe_corpus(b)
    total = sum(e.count for e in a.entries.values())
    a.merge(b)
    assert sum(e.count for e in a.entries.values()) == 2 * total


def test_violations_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = ViolationLog()
    observe_corpus(log)
    path = tmp_path / "violations.json"
    dump(log, str(path))
    assert main(["violations", str(path)]) == 0
    out = capsys.readouterr().out
    assert "EVlink Smart Wallbox" in out
    assert "chargeBoxSerialNumber" in out
    assert main(["violations", "--toml", str(path), str(path)]) == 0
    tables = tomllib.loads(capsys.readouterr().out)
    assert "EVlink Smart Wallbox" in tables["validation"]["models"]
    config = tmp_path / "gateway.toml"
    config.write_text(f"[validation]\nviolation_log = {json.dumps(str(path))}\n")
    assert main(["violations", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == 1
    # Several workers' files beside it are merged.
    dump(log, str(path) + ".1")
    assert main(["violations", "--config", str(config), "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    assert sum(e["count"] for e in merged["entries"]) == 2 * sum(
        e.count for e in log.entries.values()
    )
    os.unlink(path)
    os.unlink(str(path) + ".1")
    assert main(["violations", "--config", str(config)]) == 2
    assert "no violation log written yet" in capsys.readouterr().err
    assert main(["violations"]) == 2
    assert main(["violations", str(tmp_path / "missing.json")]) == 2
    (tmp_path / "other.json").write_text("{}")
    assert main(["violations", str(tmp_path / "other.json")]) == 2
    assert "not a violation log" in capsys.readouterr().err


def test_serving_never_loads_the_report() -> None:
    """The gateway records and stores; only `ocpp-gateway violations` loads the report, whose
    names stay importable from `ocpp_gateway.violations`."""
    import subprocess
    import sys

    code = (
        "import sys, ocpp_gateway.server\n"
        "print('ocpp_gateway.violations.report' in sys.modules)\n"
        "from ocpp_gateway.violations import main, table\n"
        "print('ocpp_gateway.violations.report' in sys.modules, main.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out == ["False", "True", "ocpp_gateway.violations.report"]
