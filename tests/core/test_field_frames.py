"""Frames real charge points sent (tests/fixtures/field_frames.json) through the core's Session.

Each frame is judged in enforce mode and compared with python-jsonschema as the oracle (decimal
numbers for 1.6, NOTES.md): both must call it valid or both invalid, and an invalid frame must
get the error code of the README's error table for its first violation.
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
        return
    assert not verdict.forward, verdict
    assert verdict.error_code == expected["error_code"], verdict.error_detail
    # The core stops at its first violation; the oracle lists every one.
    assert (expected["error_path"], expected["error_keyword"]) in found
    answer = verdict.substitute if entry["result"] else verdict.reply
    assert answer is not None
    assert json.loads(answer)[2] == expected["error_code"]
