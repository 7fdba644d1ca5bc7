"""A fleet of charge point ids, and connecting it onto a running target in steps.

Used by the scaling runs of the capacity suite and by broker_scale.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ocpp_gateway.bench.frames import V16, V201
from ocpp_gateway.bench.loadgen import LoadGenerator
from ocpp_gateway.bench.procs import Usage, usage
from ocpp_gateway.bench.summary import idle_cpu, merge_connect, per, percentiles
from ocpp_gateway.bench.targets import Target

__all__ = ["fleet_ids", "ramp"]


def fleet_ids(prefix: str, count: int, share_201: float, start: int = 0) -> list[tuple[str, str]]:
    """Charge point ids with their subprotocol, 2.0.1 spread evenly through the fleet.

    Args:
        prefix: id prefix (keeps runs against different targets apart).
        count: how many.
        share_201: fraction speaking ocpp2.0.1.
        start: index of the first one.

    Returns:
        (charge point id, subprotocol) pairs.
    """
    fleet = []
    for index in range(start, start + count):
        speaks_201 = math.floor((index + 1) * share_201) > math.floor(index * share_201)
        fleet.append((f"{prefix}-{index:06d}", V201 if speaks_201 else V16))
    return fleet


async def ramp(
    target: Target,
    loadgen: LoadGenerator,
    steps: Sequence[int],
    *,
    prefix: str,
    share_201: float,
    settle: float,
    sample_heartbeats: int,
    spread: float,
    advance: Callable[[], None] = lambda: None,
    note: Callable[[str], None] = lambda text: None,
    beside: Mapping[str, Callable[[], Usage]] | None = None,
) -> dict[str, Any]:
    """Connect (and boot) a fleet onto a running target in steps; after each, the memory held
    per charge point, the CPU of holding them idle and a sample of heartbeat round trips.

    Stops early when the target dies or more than 1 % of a step's connections fail.

    Args:
        target: the system under test; charge points are dealt round-robin over its URLs.
        loadgen: the started load generator.
        steps: fleet sizes to reach, ascending.
        prefix: charge point id prefix.
        share_201: fraction of the fleet speaking 2.0.1.
        settle: seconds to wait after a step before reading memory and CPU.
        sample_heartbeats: heartbeats sent over the whole fleet after each step.
        spread: seconds over which they are spread.
        advance: called after each step (progress).
        note: receives a line when the ramp stops early.
        beside: other processes measured the same way (a broker, a backend), by name: their
            RSS, RSS per charge point and idle CPU go into each step's record with the name
            as prefix.

    Returns:
        {"steps": [...one record per step], "reached": charge points held, "base_rss"}.
    """
    parts = dict(beside or {})
    base = target.usage()
    base_beside = {name: read() for name, read in parts.items()}
    loadgen_base = usage(loadgen.pids)
    records: list[dict[str, Any]] = []
    result: dict[str, Any] = {"steps": records, "reached": 0, "base_rss": base.rss}
    held = 0
    for step in steps:
        fresh = fleet_ids(prefix, step - held, share_201, start=held)
        urls = target.urls
        entries = [(urls[(held + i) % len(urls)], *cp) for i, cp in enumerate(fresh)]
        started = time.monotonic()
        connect = merge_connect(
            await loadgen.run(
                "connect",
                [
                    {"fleet": part, "concurrency": 100, "limit": 60.0}
                    for part in loadgen.split(entries)
                ],
            )
        )
        ramp_seconds = time.monotonic() - started
        settled = target.usage()
        settled_beside = {name: read() for name, read in parts.items()}
        await asyncio.sleep(settle)
        now = target.usage()
        held = connect["total"]
        sample = await loadgen.all(
            "sample", count=max(1, sample_heartbeats // loadgen.size), spread=spread
        )
        latencies = [x for answer in sample for x in answer["latencies"]]
        loadgen_now = usage(loadgen.pids)
        record = {
            "charge_points": step,
            "connected": held,
            "failures": connect["failures"],
            "ramp_seconds": ramp_seconds,
            "connect_rate": per(connect["connected"], ramp_seconds),
            "rss": now.rss,
            "per_cp": per(now.rss - base.rss, held),
            # CPU of holding idle connections (pings, timers), per charge point-second.
            "idle_cpu_us_per_cp_s": idle_cpu(settled, now, held),
            "processes": target.processes(),
            "heartbeat_ms": percentiles(latencies),
            "heartbeat_failed": sum(a["failed"] for a in sample),
            "loadgen_rss_per_cp": per(loadgen_now.rss - loadgen_base.rss, held),
            "target_alive": target.alive(),
        }
        for name, read in parts.items():
            current = read()
            record[f"{name}_rss"] = current.rss
            record[f"{name}_per_cp"] = per(current.rss - base_beside[name].rss, held)
            record[f"{name}_idle_cpu_us_per_cp_s"] = idle_cpu(settled_beside[name], current, held)
        records.append(record)
        result["reached"] = held
        advance()
        lost = sum(connect["failures"].values())
        wanted = len(fresh)
        if not target.alive() or lost > max(5, 0.01 * wanted):
            note(
                f"{target.name} scaling stopped at step {step}: {lost} connections failed "
                f"({connect['failures']}), target alive: {target.alive()}"
            )
            break
    return result
