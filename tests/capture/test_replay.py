"""`ocpp-gateway replay`: a trace captured from a real `ocpp` library charge point, played back
against the local responder (no difference), against one that answers differently (each
difference reported, exit 1), and against a CSMS that calls the charge point (answered from
the recording)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from interop.conftest import Interop, LibraryCsms, RawCsms, _serving, running_gateway
from kit import WAIT
from ocpp_gateway.replay import Replay, compare, load_records, plan, replay
from ocpp_gateway.server import RunningGateway

from ._support import run_replay

TOKEN = "replay-test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VERSION = "ocpp1.6"
ADMIN = {"admin.host": "127.0.0.1", "admin.port": 0, "admin.token": TOKEN}
REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "open-ocpp-trace"


@contextlib.asynccontextmanager
async def _local(**overrides: Any) -> AsyncIterator[RunningGateway]:
    async with running_gateway(None, **ADMIN, **overrides) as gateway:
        yield gateway


async def _session(gateway: RunningGateway, charge_point_id: str) -> None:
    """A library charge point's day: boot, authorize, a transaction with meter values, stop."""
    setup = Interop(LibraryCsms(), gateway)
    client = await setup.connect(charge_point_id, VERSION)
    try:
        await client.call(
            VERSION, "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}
        )
        await client.call(VERSION, "Authorize", {"idTag": "TAG-1"})
        start = await client.call(
            VERSION,
            "StartTransaction",
            {
                "connectorId": 1,
                "idTag": "TAG-1",
                "meterStart": 0,
                "timestamp": "2026-12-07T08:00:00Z",
            },
        )
        tx = start.transaction_id
        meter = [{"timestamp": "2026-12-07T08:05:00Z", "sampledValue": [{"value": "500"}]}]
        await client.call(
            VERSION, "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": meter}
        )
        await client.call(
            VERSION,
            "StopTransaction",
            {
                "transactionId": tx,
                "idTag": "TAG-1",
                "meterStop": 900,
                "timestamp": "2026-12-07T08:10:00Z",
            },
        )
        await client.call(VERSION, "Heartbeat", {})
    finally:
        await client.recorder.connection.close()
        client.task.cancel()
        await asyncio.gather(client.task, return_exceptions=True)


async def _download(gateway: RunningGateway, charge_point_id: str) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{gateway.admin_url}/charge-points/{charge_point_id}/trace",
            params={"download": "1"},
            headers=AUTH,
        ) as answer,
    ):
        assert answer.status == 200
        assert "attachment" in answer.headers["Content-Disposition"]
        return await answer.read()


@pytest.fixture
async def recorded(tmp_path: Path) -> Path:
    """A trace of a library charge point's session through a capturing gateway."""
    async with _local(**{"capture.charge_points": ["CP-R"]}) as gateway:
        await _session(gateway, "CP-R")
        body = await _download(gateway, "CP-R")
    path = tmp_path / "CP-R.trace.jsonl"
    path.write_bytes(body)
    return path


async def test_replay_against_the_local_responder_finds_no_difference(recorded: Path) -> None:
    trace = plan(load_records((await asyncio.to_thread(recorded.read_bytes)).splitlines()))
    assert trace.charge_point_id == "CP-R" and trace.subprotocol == VERSION
    assert [s.action for s in trace.steps] == [
        "BootNotification",
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
        "Heartbeat",
    ]
    async with _local(**{"capture.charge_points": ["CP-R"]}) as gateway:
        # A used responder: its next transaction id differs from the recorded one.
        await _session(gateway, "warm-up")
        state = await replay(trace, f"{gateway.url}/ocpp", speed=0.0, call_timeout=WAIT)
        stream = gateway.runtime.capture.get("CP-R")
        assert stream is not None
        sent = [
            r
            for r in gateway.runtime.capture.records(list(stream.ring))
            if r["direction"] == "cp-to-csms"
        ]
    assert state.differences == [] and state.same == 6, state.report("local")
    # The charge point's calls went out as recorded; the StopTransaction and MeterValues
    # carry the transaction id this responder assigned.
    start_answer = next(
        r
        for r in gateway.runtime.capture.records(list(stream.ring))
        if r.get("action") == "StartTransaction" and r["messageType"] == "CALLRESULT"
    )
    new_tx = start_answer["payload"]["transactionId"]
    stop = next(r for r in sent if r["action"] == "StopTransaction")
    assert stop["payload"]["transactionId"] == new_tx
    boot = next(r for r in sent if r["action"] == "BootNotification")
    assert boot["raw"].encode() == trace.steps[0].frame


async def test_a_responder_that_answers_differently_is_reported_with_exit_status_1(
    recorded: Path,
) -> None:
    overrides = {"local.accept_all": False, "local.allowed_id_tags": ["SOMEONE-ELSE"]}
    async with _local(**overrides) as gateway:
        status, report, err = await run_replay(recorded, f"{gateway.url}/ocpp", "--fast")
    assert status == 1, (report, err)
    different = [line for line in report.splitlines() if line.startswith("DIFFERENT")]
    names = [line.split()[1] for line in different]
    assert names == ["Authorize", "StartTransaction"], report
    authorize = report.split("DIFFERENT Authorize", 1)[1]
    assert '"status":"Accepted"' in authorize.split("now:", 1)[0]  # recorded
    assert '"status":"Invalid"' in authorize.split("now:", 1)[1].splitlines()[0]
    assert "6 calls, 4 answered as recorded, 2 differently" in report


async def test_the_same_trace_replayed_by_the_cli_exits_0(recorded: Path) -> None:
    async with _local() as gateway:
        status, report, err = await run_replay(recorded, f"{gateway.url}/ocpp", "--speed", "1000")
    assert status == 0, (report, err)
    assert "6 calls, 6 answered as recorded, 0 differently" in report


async def test_the_csmss_calls_are_answered_from_the_recording() -> None:
    records: list[dict[str, Any]] = [
        {
            "schemaVersion": "1.1",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "ocppVersion": "1.6",
            "transport": "json",
            "chargePointId": "CP-C",
            "direction": "cp-to-csms",
            "messageType": "CALL",
            "messageId": "b1",
            "action": "BootNotification",
            "raw": '[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]',
        },
        {
            "schemaVersion": "1.1",
            "timestamp": "2026-01-01T00:00:00.100Z",
            "ocppVersion": "1.6",
            "transport": "json",
            "chargePointId": "CP-C",
            "direction": "csms-to-cp",
            "messageType": "CALL",
            "messageId": "s9",
            "action": "ChangeConfiguration",
            "payload": {"key": "HeartbeatInterval", "value": "60"},
            "raw": '[2,"s9","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]',
        },
        {
            "schemaVersion": "1.1",
            "timestamp": "2026-01-01T00:00:00.200Z",
            "ocppVersion": "1.6",
            "transport": "json",
            "chargePointId": "CP-C",
            "direction": "cp-to-csms",
            "messageType": "CALLRESULT",
            "messageId": "s9",
            "raw": '[3,"s9",{"status":"Accepted"}]',
        },
        {
            "schemaVersion": "1.1",
            "timestamp": "2026-01-01T00:00:00.300Z",
            "ocppVersion": "1.6",
            "transport": "json",
            "chargePointId": "CP-C",
            "direction": "csms-to-cp",
            "messageType": "CALLRESULT",
            "messageId": "b1",
            "raw": '[3,"b1",{"status":"Accepted","currentTime":"2026-01-01T00:00:00Z",'
            '"interval":60}]',
        },
    ]
    trace = plan(records)
    csms = RawCsms()
    async with _serving(csms.handler) as url:
        csms.url = url
        running = asyncio.create_task(replay(trace, url, call_timeout=WAIT))
        charge_point_id, ws = await csms.next()
        assert charge_point_id == "CP-C" and ws.subprotocol == VERSION
        boot = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert boot[:3] == [2, "b1", "BootNotification"]
        await ws.send('[2,"new-1","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]')
        assert orjson.loads(await asyncio.wait_for(ws.recv(), WAIT)) == [
            3,
            "new-1",
            {"status": "Accepted"},
        ]
        await ws.send('[2,"new-2","Reset",{"type":"Hard"}]')  # not in the trace
        assert orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))[2] == "NotImplemented"
        await ws.send(
            '[3,"b1",{"status":"Pending","currentTime":"2026-12-07T00:00:00Z","interval":5}]'
        )
        state = await asyncio.wait_for(running, WAIT)
    assert [(d.action, d.unique_id) for d in state.differences] == [("BootNotification", "b1")]
    assert state.differences[0].now is not None and b"Pending" in state.differences[0].now
    assert state.unexpected == ["Reset new-2"]
    assert "DIFFERENT BootNotification b1" in state.report(url)


def test_the_reference_trace_plans_and_compares() -> None:
    trace = plan(load_records((REFERENCE / "normal-session.jsonl").read_bytes().splitlines()))
    assert trace.charge_point_id == "CS-SYNTHETIC-001" and trace.subprotocol == VERSION
    assert len(trace.steps) == 11 and all(s.answer is not None for s in trace.steps)
    state = Replay(trace)
    for step in trace.steps:
        assert state.answered(step, step.answer) is None
    assert state.same == 11


@pytest.mark.parametrize(
    ("recorded", "now", "same"),
    [
        (
            b'[3,"a",{"currentTime":"2026-01-01T00:00:00Z"}]',
            b'[3,"a",{"currentTime":"2027-01-01T00:00:00.5Z"}]',
            True,
        ),
        (b'[3,"a",{"status":"Accepted"}]', b'[3,"a",{"status":"Rejected"}]', False),
        (b'[3,"a",{}]', b'[4,"a","InternalError","",{}]', False),
        (b'[4,"a","InternalError","x",{}]', b'[4,"a","InternalError","y",{}]', True),
        (b'[3,"a",{"transactionId":1}]', b'[3,"a",{"transactionId":2}]', True),
        (None, None, True),
        (b'[3,"a",{}]', None, False),
    ],
)
def test_compare(recorded: bytes | None, now: bytes | None, same: bool) -> None:
    assert compare(recorded, now) is same


def test_strict_compares_times_and_ids() -> None:
    assert not compare(b'[3,"a",{"transactionId":1}]', b'[3,"a",{"transactionId":2}]', True)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([b"not json"], "line 1: not JSON"),
        ([b"[1]"], "not a JSON object"),
        ([], "0 charge points"),
    ],
)
def test_unreadable_traces_are_refused(lines: list[bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan(load_records(lines))


def test_the_cli_refuses_a_missing_file_and_a_bad_url(tmp_path: Path) -> None:
    from ocpp_gateway import cli

    assert cli.main(["replay", str(tmp_path / "none.jsonl"), "--to", "ws://127.0.0.1:1/x"]) == 2
    trace = tmp_path / "t.jsonl"
    trace.write_bytes((REFERENCE / "normal-session.jsonl").read_bytes())
    assert cli.main(["replay", str(trace), "--to", "http://example"]) == 2


def test_a_call_whose_answer_the_trace_lacks_is_not_compared() -> None:
    record = {
        "schemaVersion": "1.1",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "ocppVersion": "1.6",
        "transport": "json",
        "chargePointId": "CP-U",
        "direction": "cp-to-csms",
        "messageType": "CALL",
        "messageId": "h1",
        "action": "Heartbeat",
        "payload": {},
    }
    trace = plan([record])
    assert trace.steps[0].frame == b'[2,"h1","Heartbeat",{}]'  # rebuilt: no raw
    state = Replay(trace)
    assert (
        state.answered(trace.steps[0], b'[3,"h1",{"currentTime":"2026-01-01T00:00:00Z"}]') is None
    )
    assert state.unrecorded == ["Heartbeat h1"] and state.differences == []
    assert "NOT COMPARED (no answer in the trace): Heartbeat h1" in state.report("ws://x")
