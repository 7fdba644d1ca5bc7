"""Run a fleet of simulated charge points against one gateway or CSMS URL."""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl as ssl_module
from collections.abc import Sequence

import aiohttp

from ocpp_gateway.simulate.charge_point import FleetContext, SimChargePoint
from ocpp_gateway.simulate.profile import Profile
from ocpp_gateway.simulate.stats import FleetStats
from ocpp_gateway.simulate.v16 import ChargePoint16
from ocpp_gateway.simulate.v201 import ChargePoint201

# One class per OCPP version; the only place that maps a version to its behaviour.
__all__ = ["run_fleet"]


CHARGE_POINT_CLASSES: dict[str, type[SimChargePoint]] = {
    ChargePoint16.version: ChargePoint16,
    ChargePoint201.version: ChargePoint201,
}


def _session(local_addr: str | None) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=0,
        force_close=True,
        local_addr=(local_addr, 0) if local_addr else None,
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False
    )


async def run_fleet(
    url: str,
    charge_point_ids: Sequence[str],
    profile: Profile,
    *,
    stats: FleetStats,
    stop: asyncio.Event,
    ramp_seconds: float = 0.0,
    local_addrs: Sequence[str] = (),
    seed: int | None = None,
    password: str | None = None,
    ssl: ssl_module.SSLContext | None = None,
) -> None:
    """Simulate one charge point per id until `stop` is set, then close every socket.

    Each charge point is one task on a shared `aiohttp.ClientSession` (one session per local
    address) that connects to `{url}/{charge_point_id}`, boots, and then follows `profile`,
    reconnecting with backoff whenever its socket closes.

    Args:
        url: the base WebSocket URL, e.g. "ws://127.0.0.1:8180/ocpp".
        charge_point_ids: one simulated charge point per id.
        profile: the behaviour of every charge point (and the OCPP version they speak).
        stats: the counters to update (may be shared by several fleets).
        stop: set it to end the run.
        ramp_seconds: spread the first connections evenly over this many seconds.
        local_addrs: 127.x.y.z source addresses to spread the connections over, round robin
            (each address has its own ephemeral port range); empty: the system's choice.
        seed: seed of the fleet's random choices, for reproducible runs.
        password: HTTP Basic password sent by every charge point (user name: its id), for
            OCPP security profiles 1 and 2; None sends no credentials.
        ssl: the TLS context for wss:// URLs (e.g. trusting a test CA, with a client
            certificate for profile 3); None uses the system defaults.

    Raises:
        ValueError: the profile's version has no simulator.
    """
    cls = CHARGE_POINT_CLASSES.get(profile.version)
    if cls is None:
        raise ValueError(f"no simulated charge point speaks {profile.version!r}")
    ctx = FleetContext(profile, stats, random.Random(seed), password, ssl)
    base = url.rstrip("/")
    sessions = [_session(addr) for addr in local_addrs] or [_session(None)]
    count = len(charge_point_ids)
    tasks: list[asyncio.Task[None]] = []
    try:
        for index, charge_point_id in enumerate(charge_point_ids):
            charge_point = cls(charge_point_id, ctx)
            delay = ramp_seconds * index / count if ramp_seconds > 0 else 0.0
            session = sessions[index % len(sessions)]
            tasks.append(
                asyncio.create_task(
                    charge_point.run(session, f"{base}/{charge_point_id}", delay),
                    name=f"sim-{charge_point_id}",
                )
            )
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for session in sessions:
            with contextlib.suppress(Exception):
                await session.close()
