"""The shared frame table (tests/fixtures/frames.json) run through the binding.

Each case names the OCPP-J section its rule comes from; tests/fixtures/README.md explains the
conventions of the expectations.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ocpp_gateway import _core

from . import _support as s
from .conftest import SessionFactory

CASES: list[dict[str, Any]] = json.loads((s.FIXTURES / "frames.json").read_text(encoding="utf-8"))


def feed(session: _core.Session, sender: str, frame: bytes, now: float) -> _core.Verdict:
    if sender == "charge_point":
        return session.from_charge_point(frame, now)
    assert sender == "csms"
    return session.from_csms(frame, now)


def frame_bytes(case: dict[str, Any]) -> bytes:
    if "frame_hex" in case:
        return bytes.fromhex(case["frame_hex"])
    return str(case["frame"]).encode()


def observed(verdict: _core.Verdict) -> dict[str, Any]:
    """The verdict in the shape of a case's "expect"."""
    reply = s.parse_frame(verdict.reply)
    substitute = s.parse_frame(verdict.substitute)
    return {
        "forward": verdict.forward,
        "reply_code": None if reply is None else reply[2],
        "reply_unique_id": None if reply is None else reply[1],
        "substitute_code": None if substitute is None else substitute[2],
        "error_code": verdict.error_code,
        "drop_reason": verdict.drop_reason,
        "message_type": verdict.message_type,
        "action": verdict.action,
    }


def test_table_is_not_empty_and_covers_every_version() -> None:
    assert {c["version"] for c in CASES} == set(s.VERSIONS)
    assert len(CASES) > 100


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_frame_case(case: dict[str, Any], new_session: SessionFactory) -> None:
    policy = None
    if "policy" in case:
        spec = case["policy"]
        policy = _core.Policy(spec.get("default", "enforce"), spec.get("overrides"))
    session = new_session(case["version"], policy)
    now = 1000.0
    for step in case["setup"]:
        verdict = feed(session, step["from"], step["frame"].encode(), now)
        assert verdict.forward, (step, observed(verdict))
        now += 0.5
    verdict = feed(session, case["from"], frame_bytes(case), now)
    assert observed(verdict) == case["expect"], case["why"]
    if verdict.reply is not None:
        reply = s.parse_frame(verdict.reply)
        assert reply is not None
        expected_type = 5 if verdict.message_type == 3 else 4
        assert reply[0] == expected_type
        assert len(reply) == 5 and isinstance(reply[3], str) and isinstance(reply[4], dict)
    if verdict.forward:
        assert verdict.substitute is None
