"""Frames real charge points sent (tests/fixtures/field_frames.json) through the core's Session.

Each frame is judged in enforce mode and compared with python-jsonschema as the oracle (decimal
numbers for 1.6, NOTES.md): both must call it valid or both invalid, and an invalid frame must
get the error code of the README's error table, and the path and keyword, of its first
violation. The quirky frames then pass under their model's relaxations (`relax` in the fixture),
and only under their own model's.
"""

from __future__ import annotations

import decimal
import json
from functools import cache
from typing import Any

import pytest

from ocpp_gateway import _core

from . import _support as s
from .conftest import SessionFactory

UNIQUE = "field-call-1"


@cache
def corpus() -> list[dict[str, Any]]:
    """The entries of tests/fixtures/field_frames.json."""
    text = (s.FIXTURES / "field_frames.json").read_text(encoding="utf-8")
    return list(json.loads(text)["frames"])


def ids() -> list[str]:
    return [f["id"] for f in corpus()]


def oracle(entry: dict[str, Any]) -> set[tuple[str, str]]:
    """(dotted path without array indices, keyword) of every error python-jsonschema finds."""
    version = entry["version"]
    with decimal.localcontext(s.DECIMALS):
        frame = s.generator().parse_instance(entry["frame"], version)
        schema = s.schema(version, entry["action"], entry["result"])
        validator = s.generator().validator(schema, version)
        found = set()
        for error in validator.iter_errors(frame[-1]):
            parts = [str(p) for p in error.absolute_path if not isinstance(p, int)]
            found.add((".".join(parts), str(error.validator)))
        return found


def judge(new_session: SessionFactory, entry: dict[str, Any], **kwargs: Any) -> _core.Verdict:
    """The verdict of a fresh enforcing Session on the entry's frame (after the call it answers)."""
    session = new_session(entry["version"], **kwargs)
    frame = entry["frame"].encode()
    if entry["result"]:
        call = session.from_csms(entry["call"].encode(), 1.0)
        assert call.forward, call
        return session.from_charge_point(frame, 2.0)
    return session.from_charge_point(frame, 1.0)


def test_corpus_is_well_formed() -> None:
    entries = corpus()
    assert len(entries) >= 20
    assert len({e["id"] for e in entries}) == len(entries)
    assert len({e["brand"] for e in entries}) >= 15
    for e in entries:
        assert e["source"].startswith("https://github.com/"), e["id"]
        assert e["citation"], e["id"]
        assert e["direction"] == "cp_to_csms", e["id"]
        frame = json.loads(e["frame"])
        assert frame[0] == (3 if e["result"] else 2), e["id"]
        if not e["result"]:
            assert frame[2] == e["action"], e["id"]
        else:
            assert json.loads(e["call"])[2] == e["action"], e["id"]


@pytest.mark.parametrize("entry", corpus(), ids=ids())
def test_core_agrees_with_the_oracle(new_session: SessionFactory, entry: dict[str, Any]) -> None:
    found = oracle(entry)
    expected = entry["expected"]
    assert (not found) == expected["valid"], found
    verdict = judge(new_session, entry)
    if expected["valid"]:
        assert verdict.forward, verdict
        assert verdict.error_code is None
        assert (verdict.error_path, verdict.error_keyword) == (None, None)
        return
    assert not verdict.forward, verdict
    assert verdict.error_code == expected["error_code"], verdict.error_detail
    # The core stops at its first violation; the oracle lists every one.
    assert (expected["error_path"], expected["error_keyword"]) in found
    assert (verdict.error_path, verdict.error_keyword) == (
        expected["error_path"],
        expected["error_keyword"],
    )
    answer = verdict.substitute if entry["result"] else verdict.reply
    assert answer is not None
    assert json.loads(answer)[2] == expected["error_code"]


QUIRKY = [e for e in corpus() if e["relax"]]
BOOT_MODEL = "Field Test Model"


def rules_for(
    schema_sets: dict[str, _core.SchemaSet], entry: dict[str, Any], model: str
) -> _core.ModelRules:
    """Model rules giving `model` the entry's relaxations, enforcing everything else."""
    schemas = schema_sets[entry["version"]]
    return _core.ModelRules(schemas, {model: (_core.Policy("enforce"), entry["relax"])})


def model_of(entry: dict[str, Any]) -> str:
    """The model a BootNotification entry names, or the one a test boot names."""
    if entry["action"] == "BootNotification":
        return str(json.loads(entry["frame"])[3]["chargePointModel"])
    return BOOT_MODEL


def test_there_are_quirky_frames_with_relaxations() -> None:
    assert len(QUIRKY) >= 5


@pytest.mark.parametrize("entry", QUIRKY, ids=[e["id"] for e in QUIRKY])
def test_quirky_frames_pass_under_their_models_relaxations(
    schema_sets: dict[str, _core.SchemaSet], new_session: SessionFactory, entry: dict[str, Any]
) -> None:
    model = model_of(entry)
    rules = rules_for(schema_sets, entry, model)
    session = _core.Session(entry["version"], model_rules=rules)
    if entry["action"] != "BootNotification":
        boot = '[2,"boot-1","BootNotification",{"chargePointModel":"%s","chargePointVendor":"x"}]'
        assert session.from_charge_point((boot % model).encode(), 0.5).forward
    if entry["result"]:
        assert session.from_csms(entry["call"].encode(), 0.7).forward
    verdict = session.from_charge_point(entry["frame"].encode(), 1.0)
    assert session.model == model
    assert verdict.forward, verdict
    assert verdict.error_code is None
    assert verdict.relaxed in entry["relax"]
    # The rule named is the one forgiving the official schema's first violation.
    schema = entry["action"] + ("Response" if entry["result"] else "")
    key = f"{schema}.{entry['expected']['error_path']}"
    assert verdict.relaxed == key
    # Without the model's rules the same frame is refused, with the same path and keyword.
    plain = judge(new_session, entry)
    assert not plain.forward
    assert plain.relaxed is None
    assert plain.error_path == entry["expected"]["error_path"]
    assert plain.error_keyword == entry["expected"]["error_keyword"]


@pytest.mark.parametrize("entry", QUIRKY, ids=[e["id"] for e in QUIRKY])
def test_relaxations_of_another_model_do_not_apply(
    schema_sets: dict[str, _core.SchemaSet], entry: dict[str, Any]
) -> None:
    rules = rules_for(schema_sets, entry, "Some Other Model")
    session = _core.Session(entry["version"], model_rules=rules)
    if entry["result"]:
        assert session.from_csms(entry["call"].encode(), 0.7).forward
    verdict = session.from_charge_point(entry["frame"].encode(), 1.0)
    assert not verdict.forward
    assert verdict.error_code == entry["expected"]["error_code"]
    assert session.model is None


def test_an_invalid_boot_notification_names_its_model_and_is_observed(
    schema_sets: dict[str, _core.SchemaSet],
) -> None:
    entry = next(e for e in corpus() if e["id"] == "schneider-evlink-boot-serials")
    model = model_of(entry)
    rules = _core.ModelRules(schema_sets["ocpp1.6"], {model: (_core.Policy("observe"), {})})
    session = _core.Session("ocpp1.6", model_rules=rules)
    verdict = session.from_charge_point(entry["frame"].encode(), 1.0)
    assert verdict.forward
    assert verdict.observed
    assert verdict.error_code == "TypeConstraintViolation"
    assert (verdict.error_path, verdict.error_keyword) == ("chargeBoxSerialNumber", "maxLength")
    assert session.model == model
    assert session.boot_info == ("Schneider Electric", model, "3.4.0.9")
