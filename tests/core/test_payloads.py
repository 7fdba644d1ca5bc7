"""Every action of every version: valid payloads pass, mutated ones get the right CallError code.

The valid payloads come from tests/fixtures/payloads/ (built from the schemas and checked with
python-jsonschema); each mutation is also checked against python-jsonschema, so a test fails if the
core and the oracle disagree on the error kind.
"""

from __future__ import annotations

from typing import Any

import pytest

from ocpp_gateway import _core

from . import _support as s
from .conftest import SessionFactory

ACTIONS = [(v, a) for v in s.VERSIONS for a in sorted(s.payloads(v))]
SENDS = {("ocpp2.1", "NotifyPeriodicEventStream")}
CALLER = {"cp_to_csms": ["charge_point"], "csms_to_cp": ["csms"], "both": ["charge_point", "csms"]}
OTHER = {"charge_point": "csms", "csms": "charge_point"}


def directions(schema_sets: dict[str, _core.SchemaSet], version: str) -> dict[str, str]:
    return dict(schema_sets[version].actions())


def send(session: _core.Session, sender: str, frame: bytes, now: float = 10.0) -> _core.Verdict:
    if sender == "charge_point":
        return session.from_charge_point(frame, now)
    return session.from_csms(frame, now)


def test_every_fixture_action_is_known_to_the_core(
    schema_sets: dict[str, _core.SchemaSet],
) -> None:
    for version in s.VERSIONS:
        assert set(directions(schema_sets, version)) == set(s.payloads(version))


@pytest.mark.parametrize(("version", "action"), ACTIONS, ids=[f"{v}-{a}" for v, a in ACTIONS])
def test_valid_call_and_result_forwarded(
    version: str, action: str, new_session: SessionFactory, schema_sets: dict[str, _core.SchemaSet]
) -> None:
    """OCPP-J §4.2.1/§4.2.2: a valid CALL is forwarded, and so is the CALLRESULT answering it."""
    entry = s.payloads(version)[action]
    request = s.dumps(entry["request"])
    for caller in CALLER[directions(schema_sets, version)[action]]:
        session = new_session(version)
        if (version, action) in SENDS:
            frame = f'[6,"send-1","{action}",{request}]'.encode()
            verdict = send(session, caller, frame)
            assert (verdict.forward, verdict.message_type, verdict.action) == (True, 6, action)
            assert session.pending() == 0
            continue
        verdict = send(session, caller, s.call_frame("call-1", action, request))
        assert (verdict.forward, verdict.error_code, verdict.action) == (True, None, action)
        assert verdict.reply is None and verdict.message_type == 2
        assert session.pending() == 1
        response = s.dumps(entry["response"])
        answer = send(session, OTHER[caller], s.result_frame("call-1", response), now=10.25)
        assert (answer.forward, answer.error_code, answer.action) == (True, None, action)
        assert answer.message_type == 3 and answer.unique_id == "call-1"
        assert answer.call_duration == pytest.approx(0.25)
        assert session.pending() == 0


@pytest.mark.parametrize(("version", "action"), ACTIONS, ids=[f"{v}-{a}" for v, a in ACTIONS])
def test_wrong_direction_not_supported(
    version: str, action: str, new_session: SessionFactory, schema_sets: dict[str, _core.SchemaSet]
) -> None:
    """A known action sent by the side that may not send it: NotSupported, nothing forwarded."""
    direction = directions(schema_sets, version)[action]
    if direction == "both":
        assert action == "DataTransfer"
        return
    wrong_sender = "csms" if direction == "cp_to_csms" else "charge_point"
    request = s.dumps(s.payloads(version)[action]["request"])
    session = new_session(version)
    if (version, action) in SENDS:  # a SEND is never answered, not even when misdirected
        verdict = send(session, wrong_sender, f'[6,"w-1","{action}",{request}]'.encode())
        assert (verdict.forward, verdict.reply, verdict.drop_reason) == (
            False,
            None,
            "invalid_send",
        )
        assert verdict.error_code == "NotSupported"
        return
    verdict = send(session, wrong_sender, s.call_frame("w-1", action, request))
    assert not verdict.forward
    reply = s.parse_frame(verdict.reply)
    assert reply is not None and reply[:3] == [4, "w-1", "NotSupported"]
    assert session.pending() == 0


def mutation_cases() -> list[tuple[str, str, bool, str, Any, str]]:
    out = []
    for version, action in ACTIONS:
        for response in (False, True):
            instance = s.payloads(version)[action]["response" if response else "request"]
            if instance is None:
                continue
            for name, (mutated, kind) in s.mutations(version, action, response, instance).items():
                out.append((version, action, response, name, mutated, kind))
    return out


MUTATIONS = mutation_cases()


def test_mutations_cover_every_kind() -> None:
    names = {m[3] for m in MUTATIONS}
    assert names == {"required_removed", "wrong_type", "bad_enum", "too_long", "extra_property"}
    assert len(MUTATIONS) > 600


@pytest.mark.parametrize(
    ("version", "action", "response", "name", "mutated", "kind"),
    MUTATIONS,
    ids=[f"{m[0]}-{m[1]}-{'res' if m[2] else 'req'}-{m[3]}" for m in MUTATIONS],
)
def test_mutated_payload_rejected(
    version: str,
    action: str,
    response: bool,
    name: str,
    mutated: Any,
    kind: str,
    new_session: SessionFactory,
    schema_sets: dict[str, _core.SchemaSet],
) -> None:
    """DESIGN.md error table: the code of each kind of payload violation, per version."""
    text = s.dumps(mutated)
    assert s.oracle_errors(version, action, response, text) == {kind}, "oracle disagrees"
    expected = s.wire_code(version, kind)
    caller = CALLER[directions(schema_sets, version)[action]][0]
    session = new_session(version)
    entry = s.payloads(version)[action]
    if (version, action) in SENDS:
        verdict = send(session, caller, f'[6,"m-1","{action}",{text}]'.encode())
        assert (verdict.forward, verdict.reply, verdict.drop_reason) == (
            False,
            None,
            "invalid_send",
        )
        assert verdict.error_code == expected
        return
    if not response:
        verdict = send(session, caller, s.call_frame("m-1", action, text))
        assert not verdict.forward and verdict.error_code == expected
        reply = s.parse_frame(verdict.reply)
        assert reply is not None and reply[:3] == [4, "m-1", expected]
        assert session.pending() == 0
        return
    call = send(session, caller, s.call_frame("m-1", action, s.dumps(entry["request"])))
    assert call.forward
    verdict = send(session, OTHER[caller], s.result_frame("m-1", text))
    assert not verdict.forward and verdict.error_code == expected
    substitute = s.parse_frame(verdict.substitute)
    assert substitute is not None and substitute[:3] == [4, "m-1", expected]
    reply = s.parse_frame(verdict.reply)
    if version == "ocpp2.1":
        assert reply is not None and reply[:3] == [5, "m-1", expected]
    else:
        assert reply is None
