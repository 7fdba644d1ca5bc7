"""The simulator against a raw, schema-checking CSMS: payloads, answers, boot, reconnects."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from kit import WAIT, listening_port
from ocpp_gateway.simulate import FleetStats, Profile, run_fleet
from ocpp_gateway.simulate.charge_point import FleetContext
from ocpp_gateway.simulate.profile import SimVersion
from ocpp_gateway.simulate.v16 import ChargePoint16

from .conftest import SchemaCsms, load_fixtures, validator

VERSIONS: list[SimVersion] = ["ocpp1.6", "ocpp2.0.1"]

FAST = Profile(
    heartbeat_interval=0.2,
    status_interval=0.1,
    transaction_interval=0.05,
    transaction_duration=0.3,
    meter_interval=0.05,
    meter_samples=6,
    connectors=2,
    boot_retry_interval=0.05,
    reconnect_min=0.05,
    reconnect_max=0.2,
    jitter=False,
)
QUIET = dataclasses.replace(
    FAST, heartbeat_interval=0.0, status_interval=0.0, transaction_interval=0.0
)


@contextlib.asynccontextmanager
async def fleet(
    url: str, ids: Sequence[str], profile: Profile, **kwargs: Any
) -> AsyncIterator[FleetStats]:
    """Run a fleet for the duration of the block, then stop it (bounded)."""
    stats = FleetStats()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_fleet(url, ids, profile, stats=stats, stop=stop, seed=7, **kwargs)
    )
    try:
        yield stats
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)
    assert stats.internal_errors == 0


def ids(n: int, prefix: str = "CP") -> list[str]:
    return [f"{prefix}{i:03d}" for i in range(n)]


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_call_of_a_full_profile_is_schema_valid(
    csms: SchemaCsms, version: SimVersion
) -> None:
    profile = FAST.with_version(version)
    done: tuple[str, ...]
    if version == "ocpp1.6":
        done = ("Heartbeat", "StatusNotification", "Authorize", "StartTransaction", "MeterValues")
        last = "StopTransaction"
    else:
        done = ("Heartbeat", "StatusNotification", "Authorize", "TransactionEvent")
        last = "TransactionEvent"

    def ended() -> bool:
        if version == "ocpp1.6":
            return csms.count(last) >= 3
        return sum(bool(c.payload.get("eventType") == "Ended") for c in csms.calls) >= 3

    async with fleet(csms.url, ids(3), profile) as stats:
        await csms.wait_until(lambda: ended() and all(csms.count(a) for a in done))
    assert csms.calls, "no call arrived"
    invalid = [(c.action, c.errors) for c in csms.calls if c.errors]
    assert invalid == []
    assert {c.version for c in csms.calls} == {version}
    assert stats.errors == {} and stats.timeouts == {}
    assert stats.answered["BootNotification"] == 3
    assert stats.connected == 0 and stats.booted == 0
    snapshot = stats.snapshot()
    p50, p99 = snapshot.latency_quantile(0.5), snapshot.latency_quantile(0.99)
    assert p50 is not None and p99 is not None and 0 < p50 <= p99
    assert snapshot.latency_quantile(0.5, "Heartbeat") is not None
    assert all(ws.closed for ws in csms.sockets.values())


async def test_16_transactions_follow_the_protocol(csms: SchemaCsms) -> None:
    async with fleet(csms.url, ids(1), FAST):
        await csms.wait_until(lambda: csms.count("StopTransaction") >= 2)
    actions = [c.action for c in csms.calls if c.action not in ("Heartbeat",)]
    first_start = actions.index("StartTransaction")
    assert actions[first_start - 1] == "Authorize"
    meters = [c.payload for c in csms.calls if c.action == "MeterValues"]
    assert meters, "no MeterValues during the transactions"
    for payload in meters:
        assert payload["transactionId"] == 4711
        assert len(payload["meterValue"][0]["sampledValue"]) == FAST.meter_samples
    stops = [c.payload for c in csms.calls if c.action == "StopTransaction"]
    assert all(p["transactionId"] == 4711 for p in stops)
    # Energy never goes backwards across the samples of one charge point.
    registers = [float(p["meterValue"][0]["sampledValue"][0]["value"]) for p in meters]
    assert registers == sorted(registers)


async def test_201_transaction_events_are_sequenced(csms: SchemaCsms) -> None:
    profile = FAST.with_version("ocpp2.0.1")

    def events() -> list[dict[str, Any]]:
        return [c.payload for c in csms.calls if c.action == "TransactionEvent"]

    async with fleet(csms.url, ids(1), profile):
        await csms.wait_until(lambda: sum(e["eventType"] == "Ended" for e in events()) >= 2)
    by_tx: dict[str, list[dict[str, Any]]] = {}
    for event in events():
        by_tx.setdefault(event["transactionInfo"]["transactionId"], []).append(event)
    complete = [evs for evs in by_tx.values() if evs[-1]["eventType"] == "Ended"]
    assert len(complete) >= 2
    for evs in complete:
        assert evs[0]["eventType"] == "Started"
        assert [e["seqNo"] for e in evs] == list(range(len(evs)))
        assert all(e["eventType"] == "Updated" for e in evs[1:-1])
        for event in evs:
            assert len(event["meterValue"][0]["sampledValue"]) == profile.meter_samples


@pytest.mark.parametrize("version", VERSIONS)
async def test_answers_every_call_with_a_schema_valid_response(
    csms: SchemaCsms, version: SimVersion
) -> None:
    fixtures = load_fixtures(version)
    async with fleet(csms.url, ["CP-A"], QUIET.with_version(version)) as stats:
        await csms.wait_until(lambda: csms.count("StatusNotification") >= 2)
        for action, pair in fixtures.items():
            if "response" not in pair:
                continue  # a SEND has no answer
            answer = await csms.call("CP-A", action, pair["request"])
            assert answer[0] == 3, (action, answer)
            errors = [e.message for e in validator(version, action, True).iter_errors(answer[2])]
            assert errors == [], (action, answer[2])
        unknown = await csms.call("CP-A", "NoSuchAction", {})
        assert unknown[0] == 4 and unknown[2] == "NotImplemented"
    answered = {a for a, p in fixtures.items() if "response" in p}
    assert answered <= set(stats.received_calls)
    assert stats.received_calls["NoSuchAction"] == 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_boot_retries_until_accepted_and_stays_quiet_before(
    csms: SchemaCsms, version: SimVersion
) -> None:
    csms.boot_statuses = ["Pending", "Rejected"]
    async with fleet(csms.url, ["CP-B"], FAST.with_version(version)) as stats:
        await csms.wait_until(lambda: csms.count("Heartbeat") >= 1)
    actions = [c.action for c in csms.calls]
    assert actions[:3] == ["BootNotification"] * 3
    assert stats.answered["BootNotification"] == 3
    assert stats.connects == 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_misbehaving_charge_points_send_invalid_frames_then_recover(
    csms: SchemaCsms, version: SimVersion
) -> None:
    profile = dataclasses.replace(
        FAST.with_version(version),
        transaction_interval=0.0,
        misbehave_fraction=1.0,
        misbehave_probability=1.0,
    )
    async with fleet(csms.url, ids(2), profile) as stats:
        await csms.wait_until(
            lambda: (
                csms.count("BootNotification", valid=True) >= 2
                and csms.count("StatusNotification", valid=False) >= 2
            )
        )
    bad_boots = [c for c in csms.calls if c.action == "BootNotification" and c.errors]
    assert len(bad_boots) == 2  # only the first boot of each connection misbehaves
    assert all("too long" in c.errors[0] for c in bad_boots)
    assert stats.error_codes["TypeConstraintViolation"] == 2
    assert stats.error_codes["PropertyConstraintViolation"] >= 1
    invalid_seen = sum(1 for c in csms.calls if c.errors)
    assert stats.invalid_sent >= invalid_seen >= 4
    assert stats.booted == 0  # stopped


async def test_reconnects_with_backoff_when_the_socket_closes(csms: SchemaCsms) -> None:
    csms.close_after_boot = True
    async with fleet(csms.url, ["CP-R"], QUIET) as stats:
        await csms.wait_until(lambda: csms.handshakes >= 3)
    assert stats.connects >= 3
    assert stats.disconnects >= 2
    assert stats.connected == 0


async def test_refused_handshakes_are_counted_by_status(csms: SchemaCsms) -> None:
    csms.refuse_status = 503
    async with fleet(csms.url, ["CP-X"], QUIET) as stats:
        await csms.wait_until(lambda: csms.refused >= 2)
    assert stats.handshake_failures.get("503", 0) >= 1
    assert stats.connects == 0


async def test_local_addrs_spread_source_addresses(csms: SchemaCsms) -> None:
    local = ["127.0.0.2", "127.0.0.3"]
    async with fleet(csms.url, ids(4), QUIET, local_addrs=local) as stats:
        await csms.wait_until(lambda: csms.count("BootNotification") >= 4)
    assert sorted(csms.remotes) == sorted(local * 2)
    assert stats.connects == 4


async def test_a_peer_that_drops_the_tcp_connection_is_a_connect_failure() -> None:
    accepted = 0
    thrice = asyncio.Event()

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        if accepted >= 3:  # aiohttp itself retries a dropped request once
            thrice.set()
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = listening_port(server)
    try:
        async with fleet(f"ws://127.0.0.1:{port}/ocpp", ["CP-Z"], QUIET) as stats:
            await asyncio.wait_for(thrice.wait(), WAIT)
    finally:
        server.close()
        await server.wait_closed()
    assert stats.connects == 0
    assert stats.connect_failures >= 1


async def test_basic_auth_password_is_sent_with_the_charge_point_id(csms: SchemaCsms) -> None:
    async with fleet(csms.url, ["CP-AUTH"], QUIET, password="s3cret-pass"):
        await csms.wait_until(lambda: csms.count("BootNotification") >= 1)
    expected = "Basic " + base64.b64encode(b"CP-AUTH:s3cret-pass").decode()
    assert csms.authorizations == [expected]


async def test_no_password_sends_no_credentials(csms: SchemaCsms) -> None:
    async with fleet(csms.url, ["CP-ANON"], QUIET):
        await csms.wait_until(lambda: csms.count("BootNotification") >= 1)
    assert csms.authorizations == [None]


def test_a_timer_disarmed_by_an_earlier_one_in_the_same_round_does_not_fire() -> None:
    # Regression: tx_stop and meter due together; stopping disarms meter before its turn.
    ctx = FleetContext(FAST, FleetStats(), random.Random(1))
    charge_point = ChargePoint16("CP-T", ctx)
    charge_point._tx_state = "charging"
    charge_point._tx_unit = 1
    charge_point._tx_id = 9
    charge_point.arm("tx_stop", 1.0, 0.0)
    charge_point.arm("meter", 1.0, 0.0)
    charge_point._fire_timers(5.0)
    assert [action for action, _, _ in charge_point._queue] == ["StopTransaction"]
    assert "meter" not in charge_point._timers


async def test_boot_retry_follows_the_interval_the_csms_gives(csms: SchemaCsms) -> None:
    # The profile's own retry interval is far beyond the test's bound: only the CSMS's
    # interval (1 s) can bring the second BootNotification in time.
    csms.boot_statuses = ["Pending"]
    csms.boot_interval = 1
    profile = dataclasses.replace(QUIET, boot_retry_interval=3600.0)
    async with fleet(csms.url, ["CP-I"], profile) as stats, asyncio.timeout(WAIT):
        await stats.wait_for(lambda s: s.booted == 1)
    assert stats.answered["BootNotification"] == 2
    assert csms.count("BootNotification") == 2
