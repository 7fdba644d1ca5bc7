"""An observer on NATS JetStream (a real nats-server on loopback): the whole conversation, both
ways, with headers saying which way and who sent it; an unreachable broker never slows the
charge point, what did not fit is counted, and publishing resumes once it is back."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest
from websockets.protocol import State

from brokers._support import broker_server
from kit import poll
from ocpp_gateway.admin import describe
from ocpp_gateway.bench.procs import BrokerServer
from ocpp_gateway.fanout.tap import stream_name, subject_of

from .conftest import WAIT, Fleet, csms_server, gateway_with

V16 = "ocpp1.6"
QUEUE = 4


@pytest.fixture
def nats_server() -> Any:
    server = broker_server("nats")
    try:
        yield server
    finally:
        server.close()


async def stored(url: str, backend: str) -> list[Any]:
    """Every message of the observer's stream, in order."""
    client = await nats.connect(url, connect_timeout=WAIT)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream_name(backend))
        return [
            await js.get_msg(stream_name(backend), seq)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await client.close()


async def count_stored(url: str, backend: str) -> int:
    client = await nats.connect(url, connect_timeout=WAIT)
    try:
        info = await client.jetstream().stream_info(stream_name(backend))
        return int(info.state.messages)
    finally:
        await client.close()


async def test_broker_observer_sees_both_directions(nats_server: BrokerServer) -> None:
    async with csms_server() as primary:
        backends: dict[str, dict[str, Any]] = {
            "csms": {"role": "primary", "url": primary.url},
            "reporting": {
                "role": "observer",
                "type": "nats",
                "url": nats_server.url,
                "queue_frames": QUEUE,
            },
        }
        async with gateway_with(None, backends) as gateway:
            fleet = Fleet(gateway)
            try:
                cp = await fleet.connect("ERE.7", V16)  # a dot: the subject token escapes it
                await cp.call(V16, "Heartbeat", {})
                csms = await primary.peer("ERE.7")
                await csms.call(V16, "TriggerMessage", {"requestedMessage": "Heartbeat"})
                await poll(lambda: len(cp.handled) == 1, "the command handled")

                messages: list[Any] = []

                async def arrived() -> bool:
                    messages[:] = await stored(nats_server.url, "reporting")
                    return len(messages) >= 4

                await _until(arrived, "four frames stored")
                seen = [
                    (
                        m.headers["Ocpp-Direction"],
                        m.headers["Ocpp-From"],
                        m.headers["Ocpp-To"],
                        m.headers["Ocpp-Message-Type"],
                        m.headers["Ocpp-Action"],
                    )
                    for m in messages
                ]
                assert seen[:2] == [
                    ("cp_to_csms", "charge_point", "csms", "2", "Heartbeat"),
                    ("csms_to_cp", "csms", "charge_point", "3", "Heartbeat"),
                ]
                assert sorted(seen[2:4]) == [
                    ("cp_to_csms", "charge_point", "csms", "3", "TriggerMessage"),
                    ("csms_to_cp", "csms", "charge_point", "2", "TriggerMessage"),
                ]
                assert {m.subject for m in messages} == {subject_of("reporting", "ERE.7")}
                assert messages[0].data == cp.recorder.sent[0].encode()
                assert all(m.headers["Ocpp-Charge-Point"] == "ERE.7" for m in messages)

                # The broker goes away: the charge point goes on; the queue keeps QUEUE frames.
                nats_server.stop()
                conn = gateway.registry.live["ERE.7"]
                await poll(
                    lambda: describe(gateway.runtime, conn)["backends"][0]["state"] == "down",
                    "the observer seen down",
                )
                for _ in range(5):
                    await cp.call(V16, "Heartbeat", {})  # 10 frames, QUEUE kept
                listed = describe(gateway.runtime, conn)["backends"][0]
                assert listed["queued"] == QUEUE and listed["dropped"] == 10 - QUEUE
                sample = gateway.runtime.metrics.registry.get_sample_value
                labels = {"backend": "reporting", "role": "observer"}
                assert sample("ocpp_gateway_backend_dropped_frames_total", labels) == 6
                assert cp.recorder.connection.state is State.OPEN
                nats_server.start(WAIT)  # the same store: the stream and its 4 messages are there

                async def recovered() -> bool:
                    return await count_stored(nats_server.url, "reporting") >= 4 + QUEUE

                await _until(recovered, "the queued frames published after the outage")
                after = await stored(nats_server.url, "reporting")
                # The QUEUE newest frames, and perhaps the one whose publish was under way
                # when the broker went (published again, it would be stored once).
                assert len(after) in (4 + QUEUE, 4 + QUEUE + 1)
                sent, received = cp.recorder.sent, cp.recorder.received
                newest = [sent[-2], received[-2], sent[-1], received[-1]]
                assert [m.data.decode() for m in after[-QUEUE:]] == newest
            finally:
                await fleet.close()


async def _until(check: Any, what: str) -> None:
    """Poll an async condition, bounded (tests/polling.py's rule for sync ones)."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        try:
            if await check():
                return
        except (OSError, nats.errors.Error, TimeoutError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        await asyncio.sleep(0.05)
