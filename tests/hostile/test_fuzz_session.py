"""Property test of the Python session layer: arbitrary frames from a charge point, over a live
connection to a real gateway, never crash it, never get anything but a well-formed CALLERROR, the
CALLRESULT of a CALL that happened to be valid, or nothing back, and never stop it from answering
the next valid CALL.

The Rust parser itself is fuzzed with cargo fuzz (rust/ocpp-core/fuzz); this drives the whole
path above it: server loop, rate limiter, Verdict handling, metrics, the local responder.
Raise FUZZ_EXAMPLES in the environment for a longer run.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocpp_gateway.server import RunningGateway

from .conftest import Probe

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))

ERROR_CODES = {
    "ocpp1.6": {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    },
}
ERROR_CODES["ocpp2.0.1"] = {
    "FormatViolation",
    "GenericError",
    "InternalError",
    "MessageTypeNotSupported",
    "NotImplemented",
    "NotSupported",
    "OccurrenceConstraintViolation",
    "PropertyConstraintViolation",
    "ProtocolError",
    "RpcFrameworkError",
    "SecurityError",
    "TypeConstraintViolation",
}
ERROR_CODES["ocpp2.1"] = ERROR_CODES["ocpp2.0.1"]

ACTIONS = [
    "Heartbeat",
    "BootNotification",
    "StatusNotification",
    "MeterValues",
    "Authorize",
    "TransactionEvent",
    "StartTransaction",
    "DataTransfer",
    "Reset",
    "NoSuchAction",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=20,
)
unique_ids = st.text(max_size=40) | st.integers() | st.none()
envelopes = st.tuples(
    st.integers(min_value=-1, max_value=8) | st.sampled_from(["2", 2.0, None]),
    unique_ids,
    st.sampled_from(ACTIONS) | st.text(max_size=30),
    json_values,
).map(list)
frames = (
    envelopes.flatmap(lambda e: st.integers(0, len(e)).map(lambda n: json.dumps(e[:n])))
    | envelopes.map(json.dumps)
    | st.lists(json_values, max_size=6).map(json.dumps)
    | st.text(max_size=200)
)


def _call_id(frame: str) -> str | None:
    """The UniqueId of a frame shaped like a CALL (a generated frame may well be a valid one)."""
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    if isinstance(message, list) and len(message) == 4 and message[0] == 2:
        uid = message[1]
        return uid if isinstance(uid, str) else None
    return None


def check(version: str, frame: str, seen: dict[str, Any]) -> None:
    assert seen["close"] is None, seen
    for answer in seen["answers"]:
        if isinstance(answer, list) and len(answer) == 3 and answer[0] == 3:
            # Only a CALL the gateway found valid is answered with a CALLRESULT, and with its id.
            assert answer[1] == _call_id(frame), answer
            assert isinstance(answer[2], dict), answer
            continue
        assert isinstance(answer, list) and len(answer) == 5 and answer[0] == 4, answer
        assert isinstance(answer[1], str)
        assert answer[2] in ERROR_CODES[version], answer
        assert isinstance(answer[3], str)
        assert isinstance(answer[4], dict)
    assert len(seen["answers"]) <= 1


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(version=st.sampled_from(["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]), frame=frames)
async def test_any_frame_gets_a_valid_answer_or_none(
    gateway: RunningGateway, version: str, frame: str
) -> None:
    probe = Probe(gateway.url, version)
    try:
        check(version, frame, await probe.exchange(frame))
    finally:
        await probe.close()
