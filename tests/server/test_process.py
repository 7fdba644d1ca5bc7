"""The gateway as a process: SIGTERM drains pending calls then closes with 1001; --workers 2."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from kit import WAIT, GatewayProcess, gateway_process, poll

from ._support import Csms, receive_frame

Spawn = Callable[..., Awaitable[GatewayProcess]]


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """Start `ocpp-gateway serve` processes with `await spawn(*args)`; all are killed at the
    end (with their workers)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(*args: str) -> GatewayProcess:
            return await stack.enter_async_context(gateway_process(*args))

        yield start


async def test_sigterm_lets_pending_calls_finish_then_closes_with_1001(
    csms: Csms, spawn: Spawn, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("drain_timeout = 30\n")
    gateway = await spawn("--upstream", csms.url, "--config", str(config))
    url = gateway.url
    csms.auto_answer = False
    ws = await client.ws_connect(f"{url}/ocpp/DRAIN1", protocols=("ocpp1.6",))
    link = await csms.next_link()
    await ws.send_str('[2,"p-1","Heartbeat",{}]')
    assert json.loads(await link.next_frame())[:2] == [2, "p-1"]

    gateway.proc.send_signal(signal.SIGTERM)
    await gateway.wait_for_line("shutting down")
    # New charge points are refused while draining.
    with pytest.raises(aiohttp.ClientError):
        await client.ws_connect(f"{url}/ocpp/LATE", protocols=("ocpp1.6",))
    # The pending call still gets its answer ...
    await link.send(b'[3,"p-1",{"currentTime":"2025-01-01T00:00:00Z"}]')
    assert json.loads(await receive_frame(ws))[:2] == [3, "p-1"]
    # ... and then the socket is closed with 1001 (going away).
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1001
    assert await asyncio.wait_for(gateway.proc.wait(), WAIT) == 0


async def test_two_workers_share_the_port_and_the_metrics(
    spawn: Spawn, client: aiohttp.ClientSession
) -> None:
    gateway, port, sockets = await _two_workers_with_sockets(spawn, client, "W")
    for i, ws in enumerate(sockets):
        await ws.send_str(f'[2,"w{i}","Heartbeat",{{}}]')
        assert json.loads(await receive_frame(ws))[:2] == [3, f"w{i}"]
    # Whichever worker answers the scrape reports the calls of both workers; each worker adds
    # its batched counts to the shared files once a second, so a scrape may lag that much.
    # There is no event to await across processes: re-scrape, bounded by WAIT.
    totals: list[float] = []
    async with asyncio.timeout(WAIT):
        while not totals or totals[-1] < 12:
            if totals:
                await asyncio.sleep(0.2)
            totals.append(await _heartbeat_calls(client, port))
    assert totals[-1] == 12
    for ws in sockets:
        await ws.close()
    gateway.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(gateway.proc.wait(), WAIT) == 0


async def _heartbeat_calls(client: aiohttp.ClientSession, port: int) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    async with client.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "ocpp_gateway_messages_total"
                and sample.labels.get("action") == "Heartbeat"
                and sample.labels.get("message_type") == "CALL"
            ):
                total += sample.value
    return total


async def _two_workers_with_sockets(
    spawn: Spawn, client: aiohttp.ClientSession, prefix: str
) -> tuple[GatewayProcess, int, list[aiohttp.ClientWebSocketResponse]]:
    """`serve --workers 2` on a free port, both workers listening, 12 charge points connected."""
    gateway = await spawn("--workers", "2")
    port = int((await gateway.wait_for_line(r"supervising 2 workers on port (\d+)")).group(1))
    await gateway.wait_for_count(r"listening on ws://", 2)
    url = f"ws://127.0.0.1:{port}"
    sockets = [
        await client.ws_connect(f"{url}/ocpp/{prefix}{i}", protocols=("ocpp1.6",))
        for i in range(12)
    ]
    return gateway, port, sockets


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return {int(p) for p in fh.read().split()}


async def test_crashed_worker_is_restarted_and_its_gauges_dropped(
    spawn: Spawn, client: aiohttp.ClientSession
) -> None:
    gateway, port, sockets = await _two_workers_with_sockets(spawn, client, "K")
    victim = min(_children(gateway.proc.pid))
    os.kill(victim, signal.SIGKILL)
    # The sockets the victim held are gone; the others still answer.
    alive = 0
    for i, ws in enumerate(sockets):
        try:
            await ws.send_str(f'[2,"k{i}","Heartbeat",{{}}]')
        except ConnectionError:
            continue  # already seen closed
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        if msg.type is aiohttp.WSMsgType.TEXT:
            alive += 1
    assert alive < 12  # the kernel spread 12 sockets over both workers
    await gateway.wait_for_count(r"listening on ws://", 3)  # the replacement serves
    assert victim not in _children(gateway.proc.pid)
    assert len(_children(gateway.proc.pid)) == 2
    text = ""
    async with client.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    from prometheus_client.parser import text_string_to_metric_families

    connected = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ocpp_gateway_connected_charge_points"
    )
    # The dead worker's live gauge was dropped: only the open sockets are counted.
    assert connected == alive
    for ws in sockets:
        await ws.close()
    gateway.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(gateway.proc.wait(), WAIT) == 0


async def test_workers_exit_when_the_supervisor_is_killed(
    spawn: Spawn, client: aiohttp.ClientSession
) -> None:
    """SIGKILL of the supervisor: its workers get SIGTERM from the kernel (parent-death
    signal), close their charge points with 1001 and exit; none keeps the port orphaned."""
    gateway, _, sockets = await _two_workers_with_sockets(spawn, client, "O")
    workers = _children(gateway.proc.pid)
    assert len(workers) == 2
    os.kill(gateway.proc.pid, signal.SIGKILL)
    await asyncio.wait_for(gateway.proc.wait(), WAIT)
    for ws in sockets:
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1001), msg

    def exited(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited
        except FileNotFoundError:
            return True

    await poll(lambda: all(exited(pid) for pid in workers), "both workers exited")


async def _answer_calls(ws: aiohttp.ClientWebSocketResponse) -> None:
    """A charge point that accepts every call made to it."""
    async for msg in ws:
        frame = json.loads(msg.data)
        if frame[0] == 2:
            await ws.send_str(json.dumps([3, frame[1], {"status": "Accepted"}]))


async def test_any_workers_admin_api_reaches_every_workers_charge_points(
    spawn: Spawn, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    token = "two-workers-token-0123"
    config = tmp_path / "gateway.toml"
    config.write_text(f'[admin]\nhost = "127.0.0.1"\nport = 0\ntoken = "{token}"\n')
    gateway = await spawn("--workers", "2", "--config", str(config))
    port = int((await gateway.wait_for_line(r"supervising 2 workers on port (\d+)")).group(1))
    await gateway.wait_for_count(r"listening on ws://", 2)
    admin = (await gateway.wait_for_line(r"admin \(probes, metrics, API\) at (http://\S+)")).group(
        1
    )
    ids = [f"A{i}" for i in range(12)]
    sockets = [
        await client.ws_connect(f"ws://127.0.0.1:{port}/ocpp/{cp}", protocols=("ocpp1.6",))
        for cp in ids
    ]
    answering = [asyncio.create_task(_answer_calls(ws)) for ws in sockets]
    auth = {"Authorization": f"Bearer {token}"}
    # Each request lands on either worker; every answer lists the charge points of both.
    for _ in range(4):
        async with client.get(f"{admin}/charge-points", headers=auth) as resp:
            assert resp.status == 200
            listing = (await resp.json())["charge_points"]
        assert sorted(cp["id"] for cp in listing) == sorted(ids)
        assert {cp["worker"] for cp in listing} == {0, 1}  # the kernel spread 12 sockets
    for cp in ids:
        async with client.post(
            f"{admin}/charge-points/{cp}/calls",
            headers=auth,
            json={"action": "Reset", "payload": {"type": "Soft"}},
        ) as resp:
            assert resp.status == 200, (cp, await resp.text())
            assert (await resp.json())["result"] == {"status": "Accepted"}
        async with client.get(f"{admin}/charge-points/{cp}", headers=auth) as resp:
            assert (await resp.json())["id"] == cp
    async with client.get(f"{admin}/charge-points/NOPE", headers=auth) as resp:
        assert resp.status == 404
    for ws in sockets:
        await ws.close()
    for task in answering:
        task.cancel()
    gateway.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(gateway.proc.wait(), WAIT) == 0
    # Every line of the workers says which worker wrote it.
    worker_lines = [json.loads(line) for line in gateway.lines if line.startswith("{")]
    assert worker_lines and all("worker" in line for line in worker_lines)
