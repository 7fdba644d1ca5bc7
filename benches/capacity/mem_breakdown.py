"""Where an idle charge point's memory goes: tracemalloc and object counts, gateway vs bare relay.

The target runs in this process (so tracemalloc and the garbage collector see it); the test CSMS
and the load generator run in their own processes. After a warm-up fleet has come and gone,
N charge points connect, boot and stay idle; the script prints, per charge point, the RSS growth,
the traced Python allocations grouped by source line, and the new objects by type.

    python benches/capacity/mem_breakdown.py gateway --charge-points 3000
    python benches/capacity/mem_breakdown.py bare_relay --charge-points 3000

The gateway reads `OCPP_GATEWAY_*` variables as `serve` does, so a setting can be compared.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import importlib.util
import os
import sys
import tracemalloc
from typing import Any

import aiohttp
import uvloop
from aiohttp import web

from ocpp_gateway.bench.loadgen import LoadGenerator
from ocpp_gateway.bench.procs import usage
from ocpp_gateway.bench.runner import fleet_ids
from ocpp_gateway.bench.targets import CsmsPool, find_baselines


async def _gateway(upstream: str) -> tuple[str, Any]:
    from ocpp_gateway.config import load_config
    from ocpp_gateway.server import start_gateway

    # OCPP_GATEWAY_* variables apply (e.g. OCPP_GATEWAY_UPSTREAM_CLIENT=aiohttp for an A/B).
    config = load_config(overrides={"host": "127.0.0.1", "port": 0, "upstream.url": upstream})
    running = await start_gateway(config)
    return f"ws://127.0.0.1:{running.port}/ocpp", running.stop


async def _bare_relay(upstream: str) -> tuple[str, Any]:
    spec = importlib.util.spec_from_file_location("bare_relay", find_baselines() / "bare_relay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = web.Application()
    app["upstream"] = upstream
    app["client"] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )
    app.router.add_get("/ocpp/{charge_point_id}", module.relay)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop() -> None:
        await runner.cleanup()
        await app["client"].close()

    return f"ws://127.0.0.1:{port}/ocpp", stop


def _types() -> collections.Counter[str]:
    gc.collect()
    return collections.Counter(
        f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
    )


async def _main(args: argparse.Namespace) -> None:
    csms = await CsmsPool.start(1)
    loadgen = LoadGenerator(1, ["127.0.1.1"])
    loadgen.start()
    start = _gateway if args.target == "gateway" else _bare_relay
    url, stop = await start(csms.url())
    me = [os.getpid()]
    try:
        warm = fleet_ids("warm", 200, 0.3)
        await loadgen.all("connect", fleet=[(url, *cp) for cp in warm])
        await loadgen.all("close")
        await asyncio.sleep(1.0)
        tracemalloc.start(args.frames)
        types_before = _types()
        rss_before = usage(me).rss
        before = tracemalloc.take_snapshot()
        fleet = fleet_ids("idle", args.charge_points, 0.3)
        answers = await loadgen.all("connect", fleet=[(url, *cp) for cp in fleet])
        connected = sum(a.get("connected", 0) for a in answers)
        await asyncio.sleep(2.0)
        types_after = _types()
        after = tracemalloc.take_snapshot()
        rss_after = usage(me).rss
        n = connected or args.charge_points
        print(f"target {args.target}: {n} idle charge points")
        print(
            f"RSS growth per charge point (tracemalloc on): {(rss_after - rss_before) / n:,.0f} B"
        )
        stats = after.compare_to(before, "traceback" if args.frames > 1 else "lineno")
        total = sum(s.size_diff for s in stats)
        print(f"traced Python allocations per charge point: {total / n:,.0f} B")
        print("\nper charge point, by allocation site (bytes, blocks):")
        for stat in stats[: args.top]:
            frames = stat.traceback.format()[-2 * args.frames :]
            where = " <- ".join(line.strip() for line in frames[::2][::-1][:3])
            print(f"{stat.size_diff / n:8.0f} {stat.count_diff / n:5.1f}  {where}")
        print("\nnew objects per charge point, by type:")
        delta = types_after - types_before
        for name, count in delta.most_common(args.top):
            print(f"{count / n:6.2f}  {name}")
        await loadgen.all("close")
    finally:
        tracemalloc.stop()
        await stop()
        await loadgen.stop()
        csms.stop()


def main() -> int:
    """Measure one target and print the breakdown.

    Returns:
        0.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("target", choices=("gateway", "bare_relay"))
    parser.add_argument("--charge-points", type=int, default=3000)
    parser.add_argument("--frames", type=int, default=1, help="traceback depth (1: by line)")
    parser.add_argument("--top", type=int, default=30)

    args = parser.parse_args()
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
