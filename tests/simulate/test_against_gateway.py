"""The simulated fleet against the real gateway: its local responder, or relaying to a CSMS."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest

from kit import WAIT
from ocpp_gateway.config import load_config
from ocpp_gateway.schemas import default_schemas
from ocpp_gateway.server import RunningGateway, start_gateway
from ocpp_gateway.simulate import FleetStats, run_fleet
from ocpp_gateway.simulate.profile import SimVersion

from .conftest import SchemaCsms, load_fixtures
from .test_fleet import FAST, QUIET


@contextlib.asynccontextmanager
async def local_gateway(upstream: str | None = None) -> AsyncIterator[RunningGateway]:
    overrides = {"host": "127.0.0.1", "port": 0, "upstream.url": upstream}
    gateway = await start_gateway(load_config(None, {}, overrides))
    try:
        yield gateway
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0.5), WAIT)


def _sum(metrics: object, counter: str, **labels: str) -> float:
    """Sum a gateway counter's samples that carry `labels`."""
    flush = getattr(metrics, "flush", None)  # hot-path counts may be buffered until a flush
    if flush is not None:
        flush()
    total = 0.0
    for metric in getattr(metrics, counter).collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                total += sample.value
    return total


async def test_a_mixed_fleet_runs_clean_against_the_local_responder() -> None:
    fleets = {"ocpp1.6": FleetStats(), "ocpp2.0.1": FleetStats()}
    stop = asyncio.Event()

    def busy(stats: FleetStats) -> bool:
        done = "StopTransaction" if stats is fleets["ocpp1.6"] else "TransactionEvent"
        return stats.booted == 5 and stats.answered.get(done, 0) >= 6

    async with local_gateway() as gateway:
        tasks = [
            asyncio.create_task(
                run_fleet(
                    f"{gateway.url}/ocpp",
                    [f"{version}-{i}" for i in range(5)],
                    FAST.with_version(version),  # type: ignore[arg-type]
                    stats=stats,
                    stop=stop,
                    seed=3,
                )
            )
            for version, stats in fleets.items()
        ]
        async with asyncio.timeout(WAIT):
            for stats in fleets.values():
                await stats.wait_for(busy)
        assert gateway.connections == 10
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        metrics = gateway.metrics
        rejected = _sum(metrics, "rejected")
        relayed_calls = _sum(metrics, "messages", direction="cp_to_csms", message_type="CALL")
    sent = sum(s.total_sent() for s in fleets.values())
    for stats in fleets.values():
        assert stats.errors == {} and stats.timeouts == {} and stats.unmatched == 0
        assert stats.connected == 0
        assert stats.snapshot().latency_quantile(0.99) is not None
    assert rejected == 0
    # Every CALL the fleet sent was relayed (a last one may still be in flight at stop).
    assert sent - 10 <= relayed_calls <= sent


async def test_misbehaving_charge_points_are_rejected_by_the_gateway() -> None:
    profile = dataclasses.replace(
        FAST, transaction_interval=0.0, misbehave_fraction=1.0, misbehave_probability=1.0
    )
    stats = FleetStats()
    stop = asyncio.Event()

    def rejected_both_kinds(s: FleetStats) -> bool:
        return (
            s.booted == 3
            and s.error_codes.get("TypeConstraintViolation", 0) >= 3
            and s.error_codes.get("PropertyConstraintViolation", 0) >= 3
        )

    async with local_gateway() as gateway:
        task = asyncio.create_task(
            run_fleet(
                f"{gateway.url}/ocpp", ["BAD1", "BAD2", "BAD3"], profile, stats=stats, stop=stop
            )
        )
        async with asyncio.timeout(WAIT):
            await stats.wait_for(rejected_both_kinds)
        stop.set()
        await asyncio.wait_for(task, WAIT)
        by_code = {
            code: _sum(gateway.metrics, "rejected", error_code=code)
            for code in ("TypeConstraintViolation", "PropertyConstraintViolation")
        }
    # Each invalid frame the fleet saw rejected was counted by the gateway under the same code.
    assert by_code["TypeConstraintViolation"] == stats.error_codes["TypeConstraintViolation"]
    assert (
        by_code["PropertyConstraintViolation"] >= stats.error_codes["PropertyConstraintViolation"]
    )
    assert stats.errors.keys() <= {"BootNotification", "StatusNotification"}


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
async def test_answers_to_every_csms_call_pass_the_gateway(
    csms: SchemaCsms, version: SimVersion
) -> None:
    # CSMS -> gateway -> simulated charge point and back: the gateway checks each answer against
    # its response schema and would replace an invalid one with a CALLERROR.
    directions = dict(default_schemas(version).actions())
    actions = [a for a, d in directions.items() if d in ("csms_to_cp", "both")]
    payloads = load_fixtures(version)
    profile = dataclasses.replace(
        FAST.with_version(version),
        heartbeat_interval=0.0,
        status_interval=0.0,
        transaction_interval=0.0,
    )
    stats = FleetStats()
    stop = asyncio.Event()
    async with local_gateway(upstream=csms.url) as gateway:
        task = asyncio.create_task(
            run_fleet(f"{gateway.url}/ocpp", ["SIM-CSMS"], profile, stats=stats, stop=stop)
        )
        await csms.wait_until(lambda: csms.count("StatusNotification") >= 2)
        answers = {}
        for action in actions:
            answers[action] = await csms.call("SIM-CSMS", action, payloads[action]["request"])
        stop.set()
        await asyncio.wait_for(task, WAIT)
    refused = {a: f for a, f in answers.items() if f[0] != 3}
    assert refused == {}
    assert set(stats.received_calls) == set(actions)


async def test_the_fleet_reconnects_and_boots_again_after_a_gateway_restart() -> None:
    stats = FleetStats()
    stop = asyncio.Event()
    async with local_gateway() as first:
        port = first.port
        task = asyncio.create_task(
            run_fleet(
                f"{first.url}/ocpp", [f"R{i}" for i in range(5)], QUIET, stats=stats, stop=stop
            )
        )
        async with asyncio.timeout(WAIT):
            await stats.wait_for(lambda s: s.booted == 5)
    # The gateway is gone: every socket closed, the fleet keeps retrying with backoff.
    async with asyncio.timeout(WAIT):
        await stats.wait_for(lambda s: s.connected == 0)
    gateway = await start_gateway(load_config(None, {}, {"host": "127.0.0.1", "port": port}))
    try:
        async with asyncio.timeout(WAIT):
            await stats.wait_for(lambda s: s.booted == 5)
        assert gateway.connections == 5
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)
        await asyncio.wait_for(gateway.stop(drain_timeout=0.5), WAIT)
    assert stats.connects == 10
    assert stats.answered["BootNotification"] == 10
    assert stats.internal_errors == 0
