"""Property tests: the core accepts exactly what python-jsonschema accepts.

hypothesis-jsonschema draws valid payloads from the official schemas; random mutations (a value
replaced by arbitrary JSON, a key removed, a key added) make invalid ones. The oracle is
python-jsonschema: Draft4Validator with decimal numbers for 1.6, Draft6Validator for 2.x
(NOTES.md). When both reject, the core's code must be one of the kinds the oracle reports (the
core stops at the first violation, the oracle lists them all).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from ocpp_gateway import _core

from . import _support as s

# A spread of small and deep schemas, both directions, requests and responses.
SAMPLE = [
    ("ocpp1.6", "BootNotification", False),
    ("ocpp1.6", "MeterValues", False),
    ("ocpp1.6", "SetChargingProfile", False),
    ("ocpp1.6", "StopTransaction", False),
    ("ocpp1.6", "GetConfiguration", True),
    ("ocpp2.0.1", "BootNotification", False),
    ("ocpp2.0.1", "TransactionEvent", False),
    ("ocpp2.0.1", "SetVariables", False),
    ("ocpp2.0.1", "GetVariables", True),
    ("ocpp2.1", "NotifyPeriodicEventStream", False),
    ("ocpp2.1", "NotifySettlement", False),
    ("ocpp2.1", "BatterySwap", False),
    ("ocpp2.1", "GetCompositeSchedule", True),
]
IDS = [f"{v}-{a}-{'res' if r else 'req'}" for v, a, r in SAMPLE]
PROFILE = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def strategy_for(version: str, action: str, response: bool) -> st.SearchStrategy[Any]:
    raw = s.schema(version, action, response)
    # hypothesis-jsonschema wants plain floats; 1.6 schemas are loaded with decimals.
    # Its resolver cannot handle `$id: urn:...` (1.6 `id`), and the refs are all local anyway.
    plain = {k: v for k, v in json.loads(s.dumps(raw)).items() if k not in ("$id", "id")}
    return from_schema(plain)


def core_kinds(schemas: _core.SchemaSet, action: str, response: bool, text: str) -> set[str]:
    """The error kind the core reports for a payload text (empty when valid)."""
    outcome = schemas.validate(action, response, text.encode())
    if outcome is None:
        return set()
    code, detail = outcome
    assert isinstance(detail, str) and detail
    kinds = {k for k in s.DEFAULT_SPELLING if s.wire_code(schemas.version, k) == code}
    assert kinds, f"not a payload error code: {code}"
    return kinds


def assert_agrees(schemas: _core.SchemaSet, action: str, response: bool, text: str) -> bool:
    expected = s.oracle_errors(schemas.version, action, response, text)
    got = core_kinds(schemas, action, response, text)
    if not expected:
        assert not got, f"core rejects what the oracle accepts: {text}"
    else:
        assert got and got <= expected, f"core {got} vs oracle {expected}: {text}"
    return not expected


def mutate(instance: Any, data: st.DataObject) -> Any:
    """Replace one value, remove one key or add one key, somewhere in `instance`."""
    paths: list[tuple[Any, ...]] = []

    def collect(value: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(value, dict):
            for k in sorted(value):
                collect(value[k], (*path, k))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                collect(item, (*path, i))

    collect(instance, ())
    path = data.draw(st.sampled_from(paths))
    target: Any = instance
    for key in path:
        target = target[key]
    how = data.draw(st.sampled_from(["replace", "remove", "add"]))
    if how == "remove" and isinstance(target, dict) and target:
        key = data.draw(st.sampled_from(sorted(target)))
        return s.replaced(instance, path, {k: v for k, v in target.items() if k != key})
    if how == "add" and isinstance(target, dict):
        key = data.draw(st.text(min_size=1, max_size=12))
        return s.replaced(instance, path, {**target, key: data.draw(json_values)})
    return s.replaced(instance, path, data.draw(json_values))


@pytest.mark.parametrize(("version", "action", "response"), SAMPLE, ids=IDS)
def test_generated_and_mutated_payloads_agree_with_oracle(
    version: str, action: str, response: bool, schema_sets: dict[str, _core.SchemaSet]
) -> None:
    """A drawn valid payload, then a random mutation of it: the core and the oracle agree."""
    schemas = schema_sets[version]

    @PROFILE
    @given(strategy_for(version, action, response), st.data())
    def check(instance: Any, data: st.DataObject) -> None:
        assert_agrees(schemas, action, response, s.dumps(instance))
        assert_agrees(schemas, action, response, s.dumps(mutate(instance, data)))

    check()


@pytest.mark.parametrize("version", s.VERSIONS)
def test_fixture_payloads_agree_with_oracle(
    version: str, schema_sets: dict[str, _core.SchemaSet]
) -> None:
    """The committed payloads are valid for both the core and the oracle."""
    for action, entry in s.payloads(version).items():
        for response in (False, True):
            instance = entry["response" if response else "request"]
            if instance is not None:
                assert assert_agrees(schema_sets[version], action, response, s.dumps(instance))


LIMIT = ("csChargingProfiles", "chargingSchedule", "chargingSchedulePeriod", 0, "limit")


def profile_with_limit(number: str) -> str:
    """The 1.6 SetChargingProfile fixture with its schedule limit written as `number`."""
    profile = s.payloads("ocpp1.6")["SetChargingProfile"]["request"]
    return s.dumps(s.replaced(profile, LIMIT, "NUMBER")).replace('"NUMBER"', number)


NUMBERS_16 = ["21.4", "4.11", "0.1", "0.3", "1e1", "2.5e-1", "1E+2", "-0.0", "7", "1.0000000001"]


@pytest.mark.parametrize("number", NUMBERS_16)
def test_decimal_multiple_of_agrees_with_oracle(
    number: str, schema_sets: dict[str, _core.SchemaSet]
) -> None:
    """1.6 `multipleOf: 0.1` judged in decimal, written in any JSON number syntax."""
    text = profile_with_limit(number)
    assert_agrees(schema_sets["ocpp1.6"], "SetChargingProfile", False, text)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(
    value=st.decimals(
        allow_nan=False, allow_infinity=False, places=3, min_value=-1000, max_value=1000
    )
)
def test_decimal_multiple_of_property(value: Any, schema_sets: dict[str, _core.SchemaSet]) -> None:
    """Any decimal with up to 3 places: valid exactly when a multiple of 0.1 (oracle agrees)."""
    schemas = schema_sets["ocpp1.6"]
    text = profile_with_limit(str(value))
    valid = assert_agrees(schemas, "SetChargingProfile", False, text)
    assert valid == ((value * 10) % 1 == 0)
