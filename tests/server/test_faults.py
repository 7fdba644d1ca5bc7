"""Faults inside the relay: a backend reader that fails, idle and unresponsive charge points,
per-model validation policies, rate limits that must never hurt results or transactions."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import aiohttp

from kit import WAIT

from ._support import (
    BROKEN_REPLY,
    RECORDER,
    Csms,
    GatewayFactory,
    raw_upgrade,
    receive_frame,
    recorder,
    scrape,
)


async def test_backend_reader_failure_closes_the_charge_point_with_1011(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(upstream__url=csms.url, plugins__enabled=[BROKEN_REPLY])
    ws = await client.ws_connect(f"{gateway.url}/ocpp/FAULT1", protocols=("ocpp1.6",))
    link = await csms.next_link()
    await link.send(b'[2,"c-1","ClearCache",{}]')  # the plugin's answer cannot be serialised
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1011
    assert await recorder(gateway).departure() == "FAULT1"
    await asyncio.wait_for(link.closed.wait(), WAIT)  # its upstream is closed too
    metrics = await scrape(client, gateway)
    assert metrics['ocpp_gateway_connections_closed_total{reason="internal_error"}'] == 1.0


async def test_heartbeat_without_pong_counts_as_idle_timeout(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(
        security__ping_interval=0.2, security__idle_timeout=0, plugins__enabled=[RECORDER]
    )
    # A raw socket that completes the upgrade and never reads: it never answers a ping.
    _reader, writer = await raw_upgrade(gateway, "MUTE")
    try:
        assert await recorder(gateway).departure() == "MUTE"
    finally:
        writer.close()
    metrics = await scrape(client, gateway)
    assert metrics['ocpp_gateway_connections_closed_total{reason="idle_timeout"}'] == 1.0
    assert 'ocpp_gateway_connections_closed_total{reason="charge_point_closed"}' not in metrics


async def test_idle_connections_are_closed_by_the_process_timer(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(
        security__ping_interval=0, security__idle_timeout=30, plugins__enabled=[RECORDER]
    )
    quiet = await client.ws_connect(f"{gateway.url}/ocpp/QUIET", protocols=("ocpp1.6",))
    busy = await client.ws_connect(f"{gateway.url}/ocpp/BUSY", protocols=("ocpp1.6",))
    await quiet.send_str('[2,"q-1","Heartbeat",{}]')
    await receive_frame(quiet)
    # Thirty-one seconds later, as the timer sees it, only BUSY has spoken meanwhile.
    later = time.monotonic() + 31
    for conn in gateway.registry.connections:
        if conn.charge_point_id == "BUSY":
            conn.last_seen = later
    gateway.tick(later)
    assert await recorder(gateway).departure() == "QUIET"
    msg = await asyncio.wait_for(quiet.receive(), WAIT)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1001
    await busy.send_str('[2,"b-1","Heartbeat",{}]')
    assert json.loads(await receive_frame(busy))[:2] == [3, "b-1"]
    metrics = await scrape(client, gateway)
    assert metrics['ocpp_gateway_connections_closed_total{reason="idle_timeout"}'] == 1.0
    await busy.close()


BOOT_16 = {"chargePointVendor": "V", "chargePointModel": "Quirky"}
BAD_STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available", "bogus": 1}


async def _call(
    ws: aiohttp.ClientWebSocketResponse, uid: str, action: str, payload: object
) -> list[Any]:
    await ws.send_str(json.dumps([2, uid, action, payload]))
    answer: list[Any] = json.loads(await receive_frame(ws))
    assert answer[1] == uid
    return answer


async def test_model_policy_applies_from_the_first_boot_notification(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(validation__models={"Quirky": {"default": "observe"}})
    url = f"{gateway.url}/ocpp"
    quirky = await client.ws_connect(f"{url}/Q1", protocols=("ocpp1.6",))
    assert (await _call(quirky, "b", "BootNotification", BOOT_16))[0] == 3
    # The model's observe policy forwards (and counts) what enforce would refuse.
    assert (await _call(quirky, "s", "StatusNotification", BAD_STATUS))[0] == 3
    other = await client.ws_connect(f"{url}/N1", protocols=("ocpp1.6",))
    boot = dict(BOOT_16, chargePointModel="Normal")
    assert (await _call(other, "b", "BootNotification", boot))[0] == 3
    assert (await _call(other, "s", "StatusNotification", BAD_STATUS))[:3] == [
        4,
        "s",
        "FormationViolation",
    ]
    # The model is read even from a BootNotification that breaks its schema, and that very
    # frame is judged under the model's policy (issue 10: a model whose BootNotification itself
    # is invalid must not be locked out). A model without rules stays enforced.
    quirky_bad = await client.ws_connect(f"{url}/Q2", protocols=("ocpp1.6",))
    bad_boot = dict(BOOT_16, bogus=1)
    assert (await _call(quirky_bad, "b", "BootNotification", bad_boot))[0] == 3
    assert (await _call(quirky_bad, "s", "StatusNotification", BAD_STATUS))[0] == 3
    normal_bad = await client.ws_connect(f"{url}/N2", protocols=("ocpp1.6",))
    bad_normal = dict(boot, bogus=1)
    assert (await _call(normal_bad, "b", "BootNotification", bad_normal))[0] == 4
    metrics = await scrape(client, gateway)
    observed = (
        'ocpp_gateway_observed_violations_total{action="StatusNotification",'
        'direction="cp_to_csms",error_code="FormationViolation"}'
    )
    assert metrics[observed] == 2.0
    observed_boot = observed.replace("StatusNotification", "BootNotification")
    assert metrics[observed_boot] == 1.0
    for ws in (quirky, other, quirky_bad, normal_bad):
        await ws.close()


async def test_rate_limit_never_touches_results_nor_answers_transactions(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(
        upstream__url=csms.url,
        security__message_rate=0.001,
        security__message_burst=2,
        security__rate_excess="callerror",
        plugins__enabled=[RECORDER],
    )
    ws = await client.ws_connect(f"{gateway.url}/ocpp/RATE1", protocols=("ocpp1.6",))
    link = await csms.next_link()
    # Ten CSMS calls answered back to back: results are never limited.
    for i in range(10):
        await link.send(f'[2,"c-{i}","ClearCache",{{}}]'.encode())
        assert json.loads(await receive_frame(ws))[:2] == [2, f"c-{i}"]
        await ws.send_str(f'[3,"c-{i}",{{"status":"Accepted"}}]')
        assert json.loads(await link.next_frame()) == [3, f"c-{i}", {"status": "Accepted"}]
    # The burst of two CALLs passes; the third gets a CALLERROR from the gateway.
    for uid in ("h-1", "h-2"):
        assert (await _call(ws, uid, "Heartbeat", {}))[0] == 3
    assert (await _call(ws, "h-3", "Heartbeat", {}))[0] == 4
    # An invalid frame over the rate still gets its validation answer.
    answer = await _call(ws, "h-4", "Heartbeat", {"bogus": 1})
    assert answer[:3] == [4, "h-4", "FormationViolation"]
    # A transaction message is never answered with a CALLERROR: the socket is closed instead,
    # so the charger keeps the message and sends it again later.
    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2025-01-01T00:00:00Z"}
    await ws.send_str(json.dumps([2, "t-1", "StartTransaction", start]))
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1008
    assert await recorder(gateway).departure() == "RATE1"
    forwarded = [json.loads(await link.next_frame()) for _ in range(2)]
    assert [f[1] for f in forwarded] == ["h-1", "h-2"]
    assert link.frames.empty()  # neither the refused calls nor the transaction reached it


async def test_failed_send_to_the_backend_closes_with_1013(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(plugins__enabled=[RECORDER])
    ws = await client.ws_connect(f"{gateway.url}/ocpp/LOST1", protocols=("ocpp1.6",))
    conn = next(iter(gateway.registry.connections))
    # Fault injection: the local link refuses frames while its reader still waits, as a
    # WebSocket link does when its socket broke between two frames.
    conn.links["default"]._closed = True  # type: ignore[attr-defined]
    await ws.send_str('[2,"h-1","Heartbeat",{}]')
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1013
    assert await recorder(gateway).departure() == "LOST1"
    metrics = await scrape(client, gateway)
    assert metrics['ocpp_gateway_connections_closed_total{reason="upstream_lost"}'] == 1.0


async def test_shutdown_closes_every_socket_at_once(gateway_factory: GatewayFactory) -> None:
    """Charge points that do not answer the close handshake do not hold up each other: every
    one gets its close frame at once, and the drain ends within its budget (+1 s)."""
    gateway = await gateway_factory(security__ping_interval=0)
    peers = [await raw_upgrade(gateway, f"DEAD{i}") for i in range(3)]
    stopping = asyncio.create_task(gateway.stop(0.0))
    for reader, _writer in peers:
        # Sequential closes would wait aiohttp's 10 s close timeout per socket here.
        first = await asyncio.wait_for(reader.readexactly(2), WAIT / 2)
        assert first[0] == 0x88  # FIN + close opcode (RFC 6455 §5.5.1)
    await asyncio.wait_for(stopping, WAIT)
    for _reader, writer in peers:
        writer.close()


async def test_shutdown_is_bounded_with_a_stuck_slow_reader(
    csms: Csms, gateway_factory: GatewayFactory
) -> None:
    """A charge point that stopped reading with the gateway's send buffers full would block a
    close forever (aiohttp waits for the drain): the drain budget bounds the shutdown."""
    gateway = await gateway_factory(
        upstream__url=csms.url,
        security__ping_interval=0,
        security__max_outbound_queue_bytes=0,  # no slow-reader bound: only the drain budget
        security__max_message_bytes=2 << 20,
        plugins__enabled=[RECORDER],
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((gateway.host, gateway.port))
    _reader, writer = await raw_upgrade(gateway, "STUCK", sock=sock)
    link = await csms.next_link()
    conn = next(iter(gateway.registry.connections))
    server_socket = conn.ws._req.transport.get_extra_info("socket")  # type: ignore[union-attr]
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    frame = json.dumps([2, "big", "DataTransfer", {"vendorId": "v", "data": "x" * 900_000}])
    await link.send(frame.encode())
    # The plugin sees the call right before it is written, in the same step: after that write
    # the socket to STUCK is full and paused (900 kB against a few kB of buffers).
    assert await asyncio.wait_for(recorder(gateway).calls.get(), WAIT) == "big"
    await asyncio.wait_for(gateway.stop(0.0), WAIT)
    writer.close()
