"""The gateway's own calls: the one-in-flight queue as a table of decisions (OCPP-J 1.6 §4.1.1:
a CALL waits until the previous one is answered or timed out), the link's wake-ups, and the
strict check of a call before it is framed."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ocpp_gateway import _core
from ocpp_gateway.calls import (
    CallAborted,
    CallLink,
    CallQueue,
    CallQueueFull,
    CallRefused,
    prepare_call,
)

# Each step: (operation, ticket, expected result, in flight after, waiting after).
TABLE = [
    ("request", "a", "send", "a", 0),
    ("request", "b", "wait", "a", 1),
    ("request", "c", "wait", "a", 2),
    ("request", "d", "full", "a", 2),  # limit 2: refused, nothing held
    ("withdraw", "b", None, "a", 1),  # a waiting call gives up: no one new may send
    ("withdraw", "a", "c", "c", 0),  # the answer came: the next in line goes
    ("request", "e", "wait", "c", 1),
    ("withdraw", "x", None, "c", 1),  # unknown ticket: ignored
    ("withdraw", "c", "e", "e", 0),
    ("withdraw", "e", None, None, 0),
    ("request", "f", "send", "f", 0),  # free again: straight through
]


def test_the_queue_follows_its_table() -> None:
    queue: CallQueue[str] = CallQueue(limit=2)
    for operation, ticket, expected, flying, waiting in TABLE:
        result = queue.request(ticket) if operation == "request" else queue.withdraw(ticket)
        assert result == expected, (operation, ticket)
        assert queue.in_flight == flying, (operation, ticket)
        assert len(queue) == waiting, (operation, ticket)
    assert queue.clear() == []
    assert queue.in_flight is None


def test_clear_returns_the_waiting_tickets() -> None:
    queue: CallQueue[int] = CallQueue(limit=4)
    assert [queue.request(n) for n in range(4)] == ["send", "wait", "wait", "wait"]
    assert queue.clear() == [1, 2, 3]
    assert queue.request(9) == "send"


async def test_the_link_wakes_the_next_call_in_order_and_fails_all_at_close() -> None:
    link = CallLink("ocpp1.6", limit=2)
    await link.turn("a")  # free: at once
    second = asyncio.ensure_future(link.turn("b"))
    third = asyncio.ensure_future(link.turn("c"))
    await asyncio.sleep(0)  # let both queue (one loop turn, not a wait for time)
    with pytest.raises(CallQueueFull):
        await link.turn("d")
    assert not second.done() and not third.done()
    link.done("a")
    await asyncio.wait_for(second, 5)
    assert not third.done()
    await link.close()
    with pytest.raises(CallAborted):
        await asyncio.wait_for(third, 5)
    with pytest.raises(CallAborted):
        await link.turn("e")


async def test_a_call_that_gives_up_in_the_queue_leaves_it() -> None:
    link = CallLink("ocpp1.6", limit=2)
    await link.turn("a")
    waiting = asyncio.ensure_future(link.turn("b"))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert len(link.queue) == 0
    link.done("a")
    assert link.queue.in_flight is None


@pytest.fixture(scope="module")
def schemas16() -> _core.SchemaSet:
    from ocpp_gateway.schemas import default_schemas

    return default_schemas("ocpp1.6")


def test_prepare_call_checks_direction_schema_and_depth(schemas16: _core.SchemaSet) -> None:
    unique_id, frame = prepare_call(schemas16, "ocpp1.6", "Reset", {"type": "Hard"})
    assert unique_id.startswith("gw-") and len(unique_id) == 35
    assert orjson.loads(frame) == [2, unique_id, "Reset", {"type": "Hard"}]
    cases = [
        ("Heartbeat", {}, "NotSupported"),
        ("NoSuchThing", {}, "NotImplemented"),
        ("Reset", {"type": "Sideways"}, "PropertyConstraintViolation"),
    ]
    for action, payload, code in cases:
        with pytest.raises(CallRefused) as refused:
            prepare_call(schemas16, "ocpp1.6", action, payload)
        assert refused.value.error_code == code
    deep: object = "x"
    for _ in range(300):
        deep = [deep]
    with pytest.raises(CallRefused) as refused:
        prepare_call(schemas16, "ocpp1.6", "DataTransfer", {"vendorId": "v", "data": deep})
    assert refused.value.error_code == "FormationViolation"
