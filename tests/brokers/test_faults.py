"""Faults on the broker paths, with a count of transaction messages: a backend killed (SIGKILL)
while it holds committed but unanswered, unacknowledged messages; another instance answers. A
backend that starts while JetStream does not answer consumes once it does."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import nats
import pytest
import redis.asyncio
from websockets.asyncio.client import connect

from interop.conftest import Peer, _make_peer, fixture_responder
from kit import WAIT, poll

from ._support import (
    Broker,
    account,
    answers_for,
    backend_args,
    backend_broker,
    backend_processes,
    broker_gateway,
    broker_server,
    journal_rows,
    load_example,
    send_recorded,
    session_16,
    session_201,
)


async def _charger(url: str, charge_point_id: str, version: str) -> Peer:
    connection = await asyncio.wait_for(
        connect(f"{url}/ocpp/{charge_point_id}", subprotocols=[version]),  # type: ignore[list-item]
        WAIT,
    )
    return _make_peer(version, charge_point_id, connection, fixture_responder)


async def _ack_pending(kind: str, url: str) -> int:
    """Messages of the transaction stream delivered to the "csms" service and not acked."""
    if kind == "nats":
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().consumer_info("OCPP_TX", "csms")
            return int(info.num_ack_pending or 0)
        finally:
            await nc.close()
    client = redis.asyncio.Redis.from_url(url)
    try:
        summary: Any = await client.xpending("ocpp:in:tx", "csms")
        return int(summary["pending"])
    finally:
        await client.aclose()


async def test_backend_killed_holding_unacked_messages_they_are_redelivered_to_another(
    server: tuple[str, Broker], tmp_path: Path
) -> None:
    kind, running = server
    journal = str(tmp_path / "journal.sqlite")
    args = (*backend_args(kind, running.url), "--db", journal, "--ack-wait", "2")
    chargers: list[tuple[str, str, list[Any]]] = []
    for i in range(3):
        chargers.append((f"K16-{i}", "ocpp1.6", session_16(i)))
        chargers.append((f"K201-{i}", "ocpp2.0.1", session_201(i)))
    messages: list[tuple[str, str, dict[str, Any], list[Any]]] = []
    async with backend_processes() as start, broker_gateway(kind, running.url) as gateway:
        doomed = await start(*args, "--stall-after-commit")
        peers = {cp: await _charger(gateway.url, cp, version) for cp, version, _ in chargers}

        async def first_step(cp: str, version: str, steps: list[Any]) -> None:
            action, build = steps[0]
            payload = build({})
            unique_id = await send_recorded(peers[cp], version, action, payload)
            messages.append((cp, action, payload, answers_for(peers[cp].recorder, unique_id)))

        first = [asyncio.create_task(first_step(*c)) for c in chargers]
        # The doomed backend committed every first message, answered none, acked none.
        await poll(lambda: len(journal_rows(journal)) == len(chargers), "all first commits")
        assert not any(p.recorder.received for p in peers.values())
        assert await _ack_pending(kind, running.url) == len(chargers)
        doomed.kill()
        await doomed.wait()
        await start(*args)  # the second instance of the same service
        await asyncio.wait_for(asyncio.gather(*first), WAIT * 2)
        for cp, version, steps in chargers:
            answers: dict[str, Any] = {
                steps[0][0]: messages[[m[0] for m in messages].index(cp)][3][0]
            }
            for action, build in steps[1:]:
                payload = build(answers)
                unique_id = await send_recorded(peers[cp], version, action, payload)
                got = answers_for(peers[cp].recorder, unique_id)
                messages.append((cp, action, payload, got))
                if got and isinstance(got[0], dict):
                    answers[action] = got[0]
        for peer in peers.values():
            await peer.recorder.connection.close()
            peer.task.cancel()
        assert await _ack_pending(kind, running.url) == 0
    ledger = account(messages, journal)
    print(f"{kind} backend kill -9:", ledger.counts())
    assert ledger.sent == 3 * 3 + 3 * 4
    assert ledger.acknowledged == ledger.sent
    assert ledger.journaled == ledger.sent
    assert (ledger.lost, ledger.faked, ledger.callerror) == (0, 0, 0)
    # Every charger got exactly one answer per message, though the first ones were delivered
    # twice (the journal replayed the stored answer).
    assert all(len(m[3]) == 1 for m in messages)


async def test_a_backend_starting_while_jetstream_does_not_answer_consumes_once_it_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The server is stopped (SIGSTOP) between the backend's connect and its consumer set-up,
    # so that the set-up's JetStream requests time out, as on a stalled or overloaded server.
    running = broker_server("nats")
    assert isinstance(running.url, str)
    example = load_example()
    journal = example.TransactionJournal(str(tmp_path / "journal.sqlite"))
    seen: list[Any] = []
    app = example.build_app(backend_broker("nats", running.url), journal, seen=seen.append)
    runner: asyncio.Task[None] | None = None
    try:
        await app.start()  # connected, the streams and buckets in place
        assert running.proc is not None
        caplog.set_level(logging.WARNING, logger="ocpp_gateway.backend.nats")
        os.kill(running.proc.pid, signal.SIGSTOP)
        runner = asyncio.create_task(app.run())

        def setup_failed() -> bool:
            assert runner is not None
            return runner.done() or any(
                r.getMessage() == "consumer set-up failed" for r in caplog.records
            )

        await poll(setup_failed, "a consumer set-up attempt failing")
        os.kill(running.proc.pid, signal.SIGCONT)
        assert not runner.done(), runner.exception()  # still consuming
        async with broker_gateway("nats", running.url) as gateway:
            peer = await _charger(gateway.url, "stalled-start", "ocpp1.6")
            try:
                assert await peer.call("ocpp1.6", "Heartbeat", {}) is not None
            finally:
                await peer.recorder.connection.close()
                peer.task.cancel()
        assert [r.action for r in seen] == ["Heartbeat"]
    finally:
        if running.proc is not None:
            os.kill(running.proc.pid, signal.SIGCONT)
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await app.stop()
        running.close()
