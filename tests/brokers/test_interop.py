"""The interop suite's 1.6 and 2.0.1 action sets through gateway + broker (NATS JetStream, Redis
Streams) + the example backend, with `ocpp` library charge points; commands from the backend;
offline at once; busy; rejected by validation; the dedup key beside each frame."""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from interop.conftest import Peer, _make_peer, fixtures
from interop.conftest import request as library_request
from interop.test_v2_actions import CP_TO_CSMS_201, CSMS_TO_CP_201
from interop.test_v16_actions import CP_TO_CSMS, CSMS_TO_CP
from kit import WAIT, poll
from ocpp_gateway.backend import BackendApp, CommandStatus, Request
from ocpp_gateway.server import RunningGateway

from ._support import Broker, backend_broker, broker_gateway, load_example

pytestmark = pytest.mark.asyncio(loop_scope="module")

_ids = itertools.count(1)


@dataclass
class Stack:
    kind: str
    server: Broker
    gateway: RunningGateway
    app: BackendApp
    runner: asyncio.Task[None]
    seen: list[Request] = field(default_factory=list)
    clients: list[Peer] = field(default_factory=list)

    async def connect(self, version: str) -> tuple[str, Peer]:
        # A backend that stopped consuming would leave every CALL below unanswered: say why.
        assert not self.runner.done(), self.runner.exception()
        charge_point_id = f"CP{next(_ids)}"
        connection = await asyncio.wait_for(
            connect(
                f"{self.gateway.url}/ocpp/{charge_point_id}",
                subprotocols=[version],  # type: ignore[list-item]
            ),
            WAIT,
        )
        peer = _make_peer(version, charge_point_id, connection, _fixture_responder)
        self.clients.append(peer)
        return charge_point_id, peer


def _fixture_responder(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = fixtures(version)[action]["response"]
    return response


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(module_server: tuple[str, Broker]) -> AsyncIterator[Stack]:
    kind, running = module_server
    example = load_example()
    with tempfile.TemporaryDirectory() as tmp:
        journal = example.TransactionJournal(f"{tmp}/journal.sqlite")
        seen: list[Request] = []
        broker = backend_broker(kind, running.url, ack_wait=5.0)
        app = example.build_app(broker, journal, seen=seen.append)
        runner = asyncio.create_task(app.run())
        # One command may wait behind the one in flight (the busy test fills that queue).
        async with broker_gateway(kind, running.url, options={"command_queue": 1}) as gateway:
            setup = Stack(kind, running, gateway, app, runner, seen)
            try:
                yield setup
            finally:
                for peer in setup.clients:
                    await peer.recorder.connection.close()
                    peer.task.cancel()
                await asyncio.gather(*(p.task for p in setup.clients), return_exceptions=True)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await app.stop()


async def _charge_point_call(stack: Stack, version: str, action: str) -> None:
    charge_point_id, client = await stack.connect(version)
    await client.call(version, action, fixtures(version)[action]["request"])  # schema-checked
    sent = client.recorder.sent[0].encode()
    answer = json.loads(client.recorder.received[0])
    assert answer[0] == 3 and answer[1] == json.loads(sent)[1]
    # The backend got the frame as the charge point sent it, with the contract's metadata.
    mine = [r for r in stack.seen if r.charge_point_id == charge_point_id]
    assert [r.frame for r in mine] == [sent]
    request = mine[0]
    assert (request.action, request.ocpp_version, request.message_type) == (action, version, 2)
    assert request.epoch > 0 and request.node and request.received_at.endswith("Z")


async def _command(stack: Stack, version: str, action: str) -> None:
    charge_point_id, client = await stack.connect(version)
    payload = fixtures(version)[action]["request"]
    result = await stack.app.call(charge_point_id, action, payload, timeout=WAIT)
    assert result.status is CommandStatus.OK, result
    assert [a for a, _ in client.handled] == [action]
    # The command reached the charge point unchanged, its answer came back unchanged.
    assert json.loads(client.recorder.received[0]) == [2, result.unique_id, action, payload]
    assert result.frame == client.recorder.sent[0].encode()
    assert result.payload == fixtures(version)[action]["response"]


@pytest.mark.parametrize("action", CP_TO_CSMS)
async def test_16_charge_point_calls_are_answered_by_the_backend(stack: Stack, action: str) -> None:
    await _charge_point_call(stack, "ocpp1.6", action)


@pytest.mark.parametrize("action", CSMS_TO_CP)
async def test_16_commands_reach_the_charge_point(stack: Stack, action: str) -> None:
    await _command(stack, "ocpp1.6", action)


@pytest.mark.parametrize("action", CP_TO_CSMS_201)
async def test_201_charge_point_calls_are_answered_by_the_backend(
    stack: Stack, action: str
) -> None:
    await _charge_point_call(stack, "ocpp2.0.1", action)


@pytest.mark.parametrize("action", CSMS_TO_CP_201)
async def test_201_commands_reach_the_charge_point(stack: Stack, action: str) -> None:
    await _command(stack, "ocpp2.0.1", action)


async def test_command_to_an_offline_charge_point_is_answered_offline_at_once(
    stack: Stack,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await stack.app.call("nobody-here", "Reset", {"type": "Soft"}, timeout=WAIT)
    elapsed = loop.time() - started
    assert result.status is CommandStatus.OFFLINE
    assert elapsed < 0.1  # the acceptance bound: answered from the ownership bucket, no timeout


async def test_command_after_the_charge_point_left_is_offline(stack: Stack) -> None:
    charge_point_id, client = await stack.connect("ocpp1.6")
    await client.recorder.connection.close()
    # Its ownership entry goes when the gateway closed the link.
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        result = await stack.app.call(charge_point_id, "Reset", {"type": "Soft"}, timeout=WAIT)
        if result.status is CommandStatus.OFFLINE:
            break
        assert asyncio.get_running_loop().time() < deadline, result
        await asyncio.sleep(0.02)


async def test_invalid_command_is_rejected_by_validation_and_never_reaches_the_charge_point(
    stack: Stack,
) -> None:
    charge_point_id, client = await stack.connect("ocpp1.6")
    result = await stack.app.call(charge_point_id, "Reset", {"type": "Sideways"}, timeout=WAIT)
    assert result.status is CommandStatus.REJECTED
    assert result.error_code == "PropertyConstraintViolation"
    assert client.recorder.received == []
    # The link is still usable afterwards.
    ok = await stack.app.call(charge_point_id, "Reset", {"type": "Soft"}, timeout=WAIT)
    assert ok.status is CommandStatus.OK


async def test_second_command_waits_for_the_first_and_a_full_queue_answers_busy(
    stack: Stack,
) -> None:
    charge_point_id, client = await stack.connect("ocpp1.6")
    gate = asyncio.Event()
    original = client.charge_point.route_message

    async def slow(message: Any) -> Any:
        await gate.wait()
        return await original(message)

    client.charge_point.route_message = slow

    def call(unique_id: str) -> asyncio.Task[Any]:
        return asyncio.create_task(
            stack.app.call(charge_point_id, "ClearCache", {}, timeout=WAIT, unique_id=unique_id)
        )

    first = call("c0")
    # One in flight: the charge point has it (and holds its answer back).
    await poll(lambda: client.recorder.received, "first command at the charge point")
    # Of the next two, one waits in the queue (size 1 here), the other finds it full.
    others = [call("c1"), call("c2")]
    done, _ = await asyncio.wait(others, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    busy = done.pop().result()
    assert busy.status is CommandStatus.BUSY
    assert [json.loads(m)[1] for m in client.recorder.received] == ["c0"]
    gate.set()
    results = await asyncio.gather(first, *others)
    statuses = sorted(r.status.value for r in results)
    assert statuses == ["busy", "ok", "ok"]
    waited = next(r.unique_id for r in results[1:] if r.status is CommandStatus.OK)
    assert [json.loads(m)[1] for m in client.recorder.received] == ["c0", waited]


async def test_a_call_sent_again_with_the_same_unique_id_reaches_the_backend_again(
    stack: Stack,
) -> None:
    """A 1.6 charger may repeat a CALL with its UniqueId on the same connection (its answer
    came late or not at all): the broker's dedup must not swallow it (the key numbers frames,
    it does not name the UniqueId), so the backend sees it twice and the charger is answered
    twice."""
    charge_point_id, client = await stack.connect("ocpp1.6")
    for _ in range(2):
        await asyncio.wait_for(
            client.charge_point.call(
                library_request("ocpp1.6", "Heartbeat", {}), suppress=False, unique_id="again-1"
            ),
            WAIT,
        )
    answered = [m for m in client.recorder.received if json.loads(m)[:2] == [3, "again-1"]]
    assert len(answered) == 2
    assert [r.unique_id for r in stack.seen if r.charge_point_id == charge_point_id] == [
        "again-1",
        "again-1",
    ]


async def _stored_entry(stack: Stack, charge_point_id: str) -> tuple[bytes, dict[str, str]]:
    """The broker's copy of a charge point's Heartbeat: body and metadata."""
    if stack.kind == "nats":
        import nats

        nc = await nats.connect(stack.server.url)
        try:
            msg = await nc.jetstream().get_last_msg(
                "OCPP_GEN", f"ocpp.in.gen.16.Heartbeat.{charge_point_id}"
            )
        finally:
            await nc.close()
        return msg.data or b"", dict(msg.headers or {})
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(stack.server.url)
    try:
        entries: Any = await client.xrevrange("ocpp:in:gen", count=50)
    finally:
        await client.aclose()
    for _, fields in entries:
        meta = {k.decode(): v.decode() for k, v in fields.items() if k != b"frame"}
        if meta["Ocpp-Cp"] == charge_point_id:
            return fields[b"frame"], meta
    raise AssertionError("entry not found")


async def test_frames_carry_dedup_keys_of_node_epoch_and_frame_number(stack: Stack) -> None:
    charge_point_id, client = await stack.connect("ocpp1.6")
    await client.call("ocpp1.6", "Heartbeat", {})
    unique_id = json.loads(client.recorder.sent[0])[1]
    body, meta = await _stored_entry(stack, charge_point_id)
    request = next(r for r in stack.seen if r.charge_point_id == charge_point_id)
    dedup = meta["Nats-Msg-Id"] if stack.kind == "nats" else meta["Ocpp-Dedup"]
    assert dedup == f"{request.node}:{request.epoch}:1"
    assert body == client.recorder.sent[0].encode()
    assert orjson.loads(body)[2] == "Heartbeat"
    assert meta["Ocpp-Type"] == "2" and meta["Ocpp-Msg-Id"] == unique_id
    assert meta["Ocpp-Proto"] == "ocpp1.6" and meta["Ocpp-Action"] == "Heartbeat"
