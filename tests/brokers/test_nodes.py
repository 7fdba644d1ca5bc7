"""Two gateway nodes (`ocpp-gateway serve` processes) on one broker with two backend instances:
commands reach a charge point on either node; a charge point moving between nodes (its old
socket half-open) is owned by the new one and the old one closes its socket; a newcomer does not
displace a live charge point held by the other node; the same identity on both at once ends
with one owner; a node killed after the broker acknowledged a transaction message and before
the answer: the charger's retry on the other node is answered once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from websockets.exceptions import InvalidStatus

from kit import WAIT, poll
from ocpp_gateway.backend import BackendApp, CommandStatus

from ._support import (
    Broker,
    Charger,
    GatewayNode,
    account,
    backend_args,
    backend_broker,
    backend_processes,
    gateway_nodes,
    journal_rows,
    owner_of,
    run_sessions,
    session_16,
    session_201,
)


@dataclass
class Cluster:
    kind: str
    url: str
    a: GatewayNode
    b: GatewayNode
    apps: tuple[BackendApp, BackendApp]
    journal: str
    start_node: Any
    start_backend: Any


@pytest_asyncio.fixture
async def cluster(server: tuple[str, Broker], tmp_path: Path) -> AsyncIterator[Cluster]:
    kind, running = server
    journal = str(tmp_path / "journal.sqlite")
    async with gateway_nodes(kind, running.url) as start_node, backend_processes() as start:
        a = await start_node("node-a")
        b = await start_node("node-b")
        args = (*backend_args(kind, running.url), "--db", journal, "--ack-wait", "2")
        await start(*args)
        await start(*args)
        apps = (
            BackendApp(backend_broker(kind, running.url)),
            BackendApp(backend_broker(kind, running.url)),
        )
        try:
            yield Cluster(kind, running.url, a, b, apps, journal, start_node, start)
        finally:
            for app in apps:
                await app.stop()


async def _open(charger: Charger) -> Any:
    return await charger.connect(asyncio.get_running_loop().time() + WAIT)


async def test_a_command_from_either_backend_reaches_a_charge_point_on_either_node(
    cluster: Cluster,
) -> None:
    on_a = Charger("ON-A", "ocpp1.6", lambda: [cluster.a.url])
    on_b = Charger("ON-B", "ocpp2.0.1", lambda: [cluster.b.url])
    peers = {"ON-A": await _open(on_a), "ON-B": await _open(on_b)}
    try:
        assert await owner_of(cluster.kind, cluster.url, "ON-A") == "node-a"
        assert await owner_of(cluster.kind, cluster.url, "ON-B") == "node-b"
        for app in cluster.apps:
            a = await app.call("ON-A", "ClearCache", {}, timeout=WAIT)
            b = await app.call("ON-B", "GetVariables", _GET_VARIABLES, timeout=WAIT)
            assert (a.status, b.status) == (CommandStatus.OK, CommandStatus.OK), (a, b)
        assert [x for x, _ in peers["ON-A"].handled] == ["ClearCache", "ClearCache"]
        assert [x for x, _ in peers["ON-B"].handled] == ["GetVariables", "GetVariables"]
    finally:
        await on_a.close()
        await on_b.close()


_GET_VARIABLES = {
    "getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "X"}}]
}


async def test_a_charge_point_moving_to_another_node_is_owned_there_and_the_old_socket_closes(
    cluster: Cluster,
) -> None:
    first = Charger("MOVER", "ocpp1.6", lambda: [cluster.a.url])
    old = await _open(first)
    assert await owner_of(cluster.kind, cluster.url, "MOVER") == "node-a"
    # The old connection goes half-open (a charger whose network dropped): it reads nothing,
    # so node A's takeover ping, asked for by node B, goes unanswered and B may take over.
    transport = old.recorder.connection.transport
    transport.pause_reading()
    second = Charger("MOVER", "ocpp1.6", lambda: [cluster.b.url])
    new = await _open_once(second)
    transport.resume_reading()
    try:
        # Node A saw the newer owner and closed its socket as replaced (1008, as a local
        # takeover does: a "try again" would send a live duplicate back to fight over the id).
        await asyncio.wait_for(old.recorder.connection.wait_closed(), WAIT)
        assert old.recorder.connection.close_code == 1008
        assert await owner_of(cluster.kind, cluster.url, "MOVER") == "node-b"
        # Node B counted it as a takeover of an unresponsive connection.
        assert await _takeovers(cluster.b, "replaced_dead") == 1
        result = await cluster.apps[0].call("MOVER", "ClearCache", {}, timeout=WAIT)
        assert result.status is CommandStatus.OK
        assert [x for x, _ in new.handled] == ["ClearCache"]
        assert old.handled == []
    finally:
        await first.close()
        await second.close()


async def test_a_newcomer_does_not_displace_a_live_charge_point_held_by_another_node(
    cluster: Cluster,
) -> None:
    """DESIGN: a second connection never displaces the first unless it authenticated. Node B
    asks node A (through the broker) to ping its connection; it answers, so B refuses 409."""
    first = Charger("HELD", "ocpp2.0.1", lambda: [cluster.a.url])
    held = await _open(first)
    second = Charger("HELD", "ocpp2.0.1", lambda: [cluster.b.url])
    try:
        with pytest.raises(InvalidStatus) as refused:
            await _open_once(second)
        assert refused.value.response.status_code == 409
        assert await _takeovers(cluster.b, "refused") == 1
        assert held.recorder.connection.state.name == "OPEN"
        assert await owner_of(cluster.kind, cluster.url, "HELD") == "node-a"
        result = await cluster.apps[0].call("HELD", "ClearCache", {}, timeout=WAIT)
        assert result.status is CommandStatus.OK
        assert [x for x, _ in held.handled] == ["ClearCache"]
        # Once the first has left, the newcomer is welcome on the other node.
        await first.close()
        await poll(
            lambda: held.recorder.connection.state.name == "CLOSED", "the first socket closed"
        )
        moved = await _open(second)
        assert await owner_of(cluster.kind, cluster.url, "HELD") == "node-b"
        result = await cluster.apps[1].call("HELD", "ClearCache", {}, timeout=WAIT)
        assert result.status is CommandStatus.OK
        assert [x for x, _ in moved.handled] == ["ClearCache"]
    finally:
        await first.close()
        await second.close()


async def test_the_same_identity_on_both_nodes_at_once_ends_with_one_owner(
    cluster: Cluster,
) -> None:
    for round_ in range(3):
        charge_point_id = f"TWIN-{round_}"
        chargers = [
            Charger(charge_point_id, "ocpp1.6", lambda: [cluster.a.url]),
            Charger(charge_point_id, "ocpp1.6", lambda: [cluster.b.url]),
        ]
        results = await asyncio.gather(*(_open_once(c) for c in chargers), return_exceptions=True)
        try:
            peers = [r for r in results if not isinstance(r, BaseException)]

            def open_ones(peers: list[Any] = peers) -> list[Any]:
                return [p for p in peers if p.recorder.connection.state.name == "OPEN"]

            await poll(lambda: len(open_ones()) == 1, "exactly one socket left open")
            owner = await owner_of(cluster.kind, cluster.url, charge_point_id)
            survivor = open_ones()[0]
            index = [c.peer for c in chargers].index(survivor)
            assert owner == ("node-a", "node-b")[index]
            result = await cluster.apps[1].call(charge_point_id, "ClearCache", {}, timeout=WAIT)
            assert result.status is CommandStatus.OK
            assert [x for x, _ in survivor.handled] == ["ClearCache"]
        finally:
            for charger in chargers:
                await charger.close()


async def _takeovers(node: GatewayNode, outcome: str) -> float:
    """A node's `ocpp_gateway_takeovers_total{outcome}`, scraped from its /metrics."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    base = node.url.replace("ws://", "http://", 1)
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        text = await response.text()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ocpp_gateway_takeovers_total" and sample.labels["outcome"] == outcome
    )


async def _open_once(charger: Charger) -> Any:
    """One handshake attempt (a refusal raises)."""
    return await charger.connect(asyncio.get_running_loop().time())


async def test_node_killed_after_the_broker_acked_the_retry_on_the_other_node_is_answered_once(
    server: tuple[str, Broker], tmp_path: Path
) -> None:
    kind, running = server
    journal = str(tmp_path / "journal.sqlite")
    args = (*backend_args(kind, running.url), "--db", journal, "--ack-wait", "2")
    async with gateway_nodes(kind, running.url) as start_node, backend_processes() as start:
        a = await start_node("node-a")
        b = await start_node("node-b")
        await start(*args, "--stall-after-commit")  # commits, never answers
        urls = [a.url, b.url]
        chargers = [
            (Charger("DOOM-16", "ocpp1.6", lambda: list(urls)), session_16(0)),
            (Charger("DOOM-201", "ocpp2.0.1", lambda: list(urls)), session_201(0)),
        ]
        for charger, _ in chargers:
            await _open(charger)  # both on node A (the first URL)
        sessions = asyncio.create_task(run_sessions(chargers, within=WAIT * 2))
        # The broker acknowledged both first messages and the backend committed them ...
        await poll(lambda: len(journal_rows(journal)) == 2, "both first messages committed")
        # ... and before any answer, node A dies.
        a.kill()
        await a.wait()
        urls.remove(a.url)
        await start(*args)  # a backend that answers (from the journal for those two)
        messages = await asyncio.wait_for(sessions, WAIT * 3)
        for charger, _ in chargers:
            assert charger.connections >= 2  # reconnected (to node B)
            await charger.close()
    ledger = account(messages, journal)
    print(f"{kind} gateway node kill -9:", ledger.counts())
    assert ledger.sent == 3 + 4
    assert ledger.acknowledged == ledger.sent == ledger.journaled
    assert (ledger.lost, ledger.faked, ledger.callerror) == (0, 0, 0)
    # The retry of each first message was answered once.
    assert all(len([x for x in m[3] if isinstance(x, dict)]) == 1 for m in messages)
    del b
