"""The relay: frames both ways unchanged, invalid frames answered and not forwarded, many charge
points interleaved, upstream refusal and loss, charge point departure, metrics."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest

from kit import WAIT, free_port
from ocpp_gateway.server import RunningGateway

from ._support import Csms, GatewayFactory, receive_frame, scrape


async def connect(
    client: aiohttp.ClientSession, gateway: RunningGateway, cp: str, proto: str = "ocpp1.6"
) -> aiohttp.ClientWebSocketResponse:
    return await client.ws_connect(f"{gateway.url}/ocpp/{cp}", protocols=(proto,))


async def test_frames_relayed_both_ways_with_bytes_unchanged(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    csms.auto_answer = False
    ws = await connect(client, relay, "CP1")
    assert ws.protocol == "ocpp1.6"
    link = await csms.next_link()
    assert link.charge_point_id == "CP1"
    assert link.protocol == "ocpp1.6"

    # CP -> CSMS: odd spacing must survive (the gateway forwards the bytes it received).
    call = b'[2,  "u-1" ,"Heartbeat" , { } ]'
    await ws.send_str(call.decode())
    assert await link.next_frame() == call
    answer = b'[3,"u-1",{"currentTime":"2025-01-01T00:00:00.000Z"}  ]'
    await link.send(answer)
    assert await receive_frame(ws) == answer

    # CSMS -> CP and the CP's answer back.
    reset = b'[2, "srv-7", "Reset", {"type": "Soft"}]'
    await link.send(reset)
    assert await receive_frame(ws) == reset
    result = b'[3, "srv-7", {"status":"Accepted"}]'
    await ws.send_str(result.decode())
    assert await link.next_frame() == result
    await ws.close()


async def test_invalid_frame_from_charge_point_is_answered_and_not_forwarded(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    ws = await connect(client, relay, "CP2")
    link = await csms.next_link()
    # Required property missing (OCPP-J 1.6 §4.2.3: OccurenceConstraintViolation, 1.6 spelling).
    await ws.send_str('[2,"bad-1","BootNotification",{"chargePointVendor":"V"}]')
    error = json.loads(await receive_frame(ws))
    assert error[:3] == [4, "bad-1", "OccurenceConstraintViolation"]
    # Not JSON at all.
    await ws.send_str("this is not json")
    error = json.loads(await receive_frame(ws))
    assert error[0] == 4
    assert error[2] == "FormationViolation"
    # Nothing of the above reached the CSMS: the next frame it sees is the valid heartbeat.
    await ws.send_str('[2,"ok-1","Heartbeat",{}]')
    assert json.loads(await link.next_frame()) == [2, "ok-1", "Heartbeat", {}]
    assert json.loads(await receive_frame(ws))[:2] == [3, "ok-1"]
    assert link.frames.empty()
    await ws.close()


async def test_invalid_frame_from_csms_is_answered_and_not_forwarded(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    ws = await connect(client, relay, "CP3")
    link = await csms.next_link()
    # A CSMS sending a charge-point-only action is answered NotSupported.
    await link.send(b'[2,"s-1","Heartbeat",{}]')
    assert json.loads(await link.next_frame())[:3] == [4, "s-1", "NotSupported"]
    # A payload violating its schema (enum) is answered PropertyConstraintViolation.
    await link.send(b'[2,"s-2","Reset",{"type":"Sideways"}]')
    assert json.loads(await link.next_frame())[:3] == [4, "s-2", "PropertyConstraintViolation"]
    # The charge point saw none of it: its next frame is the valid command.
    await link.send(b'[2,"s-3","Reset",{"type":"Hard"}]')
    assert json.loads(await receive_frame(ws)) == [2, "s-3", "Reset", {"type": "Hard"}]
    await ws.close()


async def test_unmatched_result_is_dropped_and_counted(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    ws = await connect(client, relay, "CP4")
    link = await csms.next_link()
    await link.send(b'[3,"nobody-asked",{}]')
    await ws.send_str('[2,"h-1","Heartbeat",{}]')
    # The heartbeat's answer is the first thing the charge point receives.
    assert json.loads(await receive_frame(ws))[:2] == [3, "h-1"]
    metrics = await scrape(client, relay)
    assert metrics['ocpp_gateway_unmatched_results_total{direction="csms_to_cp"}'] == 1.0
    await ws.close()


async def test_many_charge_points_interleaved_each_get_their_own_answers(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    count = 25
    sockets = [await connect(client, relay, f"CP{i:03d}") for i in range(1, count + 1)]

    async def boot(i: int, ws: aiohttp.ClientWebSocketResponse) -> int:
        # Every charge point uses the same UniqueIds: sessions are per connection.
        for n in range(3):
            payload = {"chargePointVendor": "V", "chargePointModel": "M"}
            await ws.send_str(json.dumps([2, f"id-{n}", "BootNotification", payload]))
            answer = json.loads(await receive_frame(ws))
            assert answer[:2] == [3, f"id-{n}"]
            assert answer[2]["interval"] == i
        return i

    done = await asyncio.gather(*(boot(i, ws) for i, ws in enumerate(sockets, start=1)))
    assert done == list(range(1, count + 1))
    metrics = await scrape(client, relay)
    key = (
        'ocpp_gateway_messages_total{action="BootNotification",direction="cp_to_csms",'
        'message_type="CALL"}'
    )
    assert metrics[key] == 3 * count
    assert metrics['ocpp_gateway_connected_charge_points{ocpp_version="ocpp1.6"}'] == count
    for ws in sockets:
        await ws.close()


async def test_upstream_refused_means_handshake_refused(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    csms.refuse_status = 404
    gateway = await gateway_factory(upstream__url=csms.url)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await connect(client, gateway, "CP9")
    assert info.value.status == 503
    assert csms.handshakes == 1
    metrics = await scrape(client, gateway)
    assert metrics['ocpp_gateway_upstream_connect_failures_total{transport="default"}'] == 1.0
    assert metrics['ocpp_gateway_handshakes_refused_total{reason="upstream_unavailable"}'] == 1.0


async def test_upstream_unreachable_means_handshake_refused(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    port = free_port()  # a port nobody listens on
    gateway = await gateway_factory(upstream__url=f"ws://127.0.0.1:{port}/ocpp")
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await connect(client, gateway, "CP9")
    assert info.value.status == 503


async def test_upstream_loss_closes_the_charge_point_socket(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    csms.auto_answer = False
    ws = await connect(client, relay, "CP5")
    link = await csms.next_link()
    # A transaction message is in flight when the CSMS goes away: the gateway must not answer
    # it itself; it closes the socket so the charge point queues the message.
    await ws.send_str(
        '[2,"t-1","StopTransaction",{"meterStop":10,"timestamp":'
        '"2025-01-01T00:00:00Z","transactionId":1}]'
    )
    await link.next_frame()
    await link.ws.close()
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1013
    metrics = await scrape(client, relay)
    assert metrics['ocpp_gateway_connections_closed_total{reason="upstream_lost"}'] == 1.0


async def test_charge_point_leaving_closes_its_upstream(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    ws = await connect(client, relay, "CP6")
    link = await csms.next_link()
    await ws.close()
    await asyncio.wait_for(link.closed.wait(), WAIT)
    assert link.ws.closed


async def test_percent_decoded_identity_reaches_the_csms(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    ws = await client.ws_connect(f"{relay.url}/ocpp/CP%20001", protocols=("ocpp2.0.1",))
    link = await csms.next_link()
    assert link.charge_point_id == "CP 001"
    assert link.protocol == "ocpp2.0.1"
    await ws.close()


async def test_basic_credentials_are_sent_upstream(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(
        upstream__url=csms.url, upstream__username="gw", upstream__password="s3cret"
    )
    ws = await connect(client, gateway, "CP7")
    link = await csms.next_link()
    assert link.authorization == "Basic " + base64.b64encode(b"gw:s3cret").decode()
    await ws.close()


async def test_metrics_health_and_readiness(
    relay: RunningGateway, csms: Csms, client: aiohttp.ClientSession
) -> None:
    ws = await connect(client, relay, "CP8")
    await csms.next_link()
    await ws.send_str('[2,"m-1","Heartbeat",{}]')
    await receive_frame(ws)
    await ws.send_str('[2,"m-2","NoSuchAction",{}]')
    assert json.loads(await receive_frame(ws))[2] == "NotImplemented"
    metrics = await scrape(client, relay)
    call = (
        'ocpp_gateway_messages_total{action="Heartbeat",direction="cp_to_csms",message_type="CALL"}'
    )
    result = (
        'ocpp_gateway_messages_total{action="Heartbeat",direction="csms_to_cp",'
        'message_type="CALLRESULT"}'
    )
    assert metrics[call] == 1.0
    assert metrics[result] == 1.0
    duration = 'ocpp_gateway_call_duration_seconds_count{action="Heartbeat",direction="cp_to_csms"}'
    assert metrics[duration] == 1.0
    # An unknown action is labelled "unknown": peers cannot grow the label sets.
    rejected = (
        'ocpp_gateway_rejected_messages_total{action="unknown",direction="cp_to_csms",'
        'error_code="NotImplemented"}'
    )
    assert metrics[rejected] == 1.0
    assert not any("NoSuchAction" in key or "CP8" in key for key in metrics)
    http = relay.url.replace("ws://", "http://", 1)
    async with client.get(f"{http}/healthz") as response:
        assert response.status == 200
    async with client.get(f"{http}/readyz") as response:
        assert response.status == 200
        assert (await response.json())["ready"] is True
    await ws.close()
