"""Where an idle charge point's memory goes: tracemalloc and object counts, gateway vs bare relay.

The target runs in this process (so tracemalloc and the garbage collector see it); the test CSMS
and the load generator run in their own processes. After a warm-up fleet has come and gone,
N charge points connect, boot and stay idle; the script prints, per charge point, the RSS growth,
the traced Python allocations grouped by source line, and the new objects by type.

    python benches/capacity/mem_breakdown.py gateway --charge-points 3000
    python benches/capacity/mem_breakdown.py bare_relay --charge-points 3000
    python benches/capacity/mem_breakdown.py gateway --upstream nats --charge-points 5000
    python benches/capacity/mem_breakdown.py gateway --tls ec --charge-points 2000

The gateway reads `OCPP_GATEWAY_*` variables as `serve` does, so a setting can be compared.
`--upstream nats|redis` starts a broker server (nats-server -js / redis-server, on loopback,
in a temporary directory) and the bench backend service (`broker_backend.py`), and points the
gateway at the broker instead of the test CSMS; `--types-by-size` also sums the new objects'
`sys.getsizeof` by type (containers only, not what they refer to). `--tls ec|rsa` serves wss
with a certificate generated in the run (the handshake gate's limits lifted for the one-address
load generator); glibc's heap in use (`mallinfo2`, every malloc: OpenSSL's too, which
tracemalloc does not see) is printed beside the traced Python allocations.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ctypes
import gc
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from aiohttp import web

from ocpp_gateway.bench.loadgen import LoadGenerator
from ocpp_gateway.bench.procs import BrokerServer, usage
from ocpp_gateway.bench.ramp import fleet_ids
from ocpp_gateway.bench.targets import CsmsPool, find_baselines

HERE = Path(__file__).resolve().parent


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=sink, start_new_session=True)


async def _broker(kind: str, store: str) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """Start a broker server and the bench backend on it. Returns: its URL and the processes."""
    log = Path(store) / "log"
    try:
        broker = BrokerServer("redis_streams" if kind == "redis" else kind, log=log, parent=store)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    await asyncio.to_thread(broker.start)
    assert broker.proc is not None
    server, url = broker.proc, broker.url
    backend = _spawn([sys.executable, str(HERE / "broker_backend.py"), f"--{kind}", url], log)
    return url, [backend, server]


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap() -> tuple[int, int]:
    """glibc's heap: (bytes in use in the arenas, bytes in mmapped chunks)."""
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return int(info.uordblks), int(info.hblkhd)


async def _gateway(
    upstream: str, kind: str = "websocket", tls: tuple[str, str] | None = None
) -> tuple[str, Any]:
    from ocpp_gateway.config import load_config
    from ocpp_gateway.server import start_gateway

    # OCPP_GATEWAY_* variables apply (e.g. OCPP_GATEWAY_UPSTREAM_CLIENT=aiohttp for an A/B).
    overrides = {"host": "127.0.0.1", "port": 0, "upstream.url": upstream}
    if kind != "websocket":
        overrides["upstream.type"] = "nats" if kind == "nats" else "redis_streams"
    if tls is not None:
        overrides["security.tls_cert"], overrides["security.tls_key"] = tls
        overrides["security.tls_handshake_rate_per_ip"] = 0
        overrides["security.tls_handshakes_in_flight_per_ip"] = 0
    config = load_config(overrides=overrides)
    running = await start_gateway(config)
    scheme, host = ("wss", "localhost") if tls else ("ws", "127.0.0.1")
    return f"{scheme}://{host}:{running.port}/ocpp", running.stop


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


def _types(sizes: bool) -> tuple[collections.Counter[str], collections.Counter[str]]:
    gc.collect()
    counts: collections.Counter[str] = collections.Counter()
    bytes_: collections.Counter[str] = collections.Counter()
    for o in gc.get_objects():
        name = f"{type(o).__module__}.{type(o).__qualname__}"
        counts[name] += 1
        if sizes:
            bytes_[name] += sys.getsizeof(o)
    return counts, bytes_


async def _main(args: argparse.Namespace) -> None:
    csms = await CsmsPool.start(1)
    loadgen = LoadGenerator(1, ["127.0.1.1"])
    loadgen.start()
    store = tempfile.mkdtemp(prefix="mem-breakdown-")
    brokers: list[subprocess.Popen[bytes]] = []
    upstream = csms.url()
    if args.upstream != "websocket":
        upstream, brokers = await _broker(args.upstream, store)
    tls = None
    if args.tls:
        from ocpp_gateway.bench.pki import make_pki

        pki = make_pki(Path(store))
        cert, key = (pki.ec_cert, pki.ec_key) if args.tls == "ec" else (pki.rsa_cert, pki.rsa_key)
        tls = (str(cert), str(key))
        await loadgen.all("configure_tls", ca=str(pki.ca_cert))
    if args.target == "gateway":
        url, stop = await _gateway(upstream, args.upstream, tls)
    else:
        url, stop = await _bare_relay(upstream)
    me = [os.getpid()]
    try:
        warm = fleet_ids("warm", 200, 0.3)
        await loadgen.all("connect", fleet=[(url, *cp) for cp in warm])
        await loadgen.all("close")
        await asyncio.sleep(1.0)
        tracemalloc.start(args.frames)
        types_before, sizes_before = _types(args.types_by_size)
        rss_before = usage(me).rss
        heap_before = _heap()
        before = tracemalloc.take_snapshot()
        fleet = fleet_ids("idle", args.charge_points, 0.3)
        answers = await loadgen.all("connect", fleet=[(url, *cp) for cp in fleet])
        connected = sum(a.get("connected", 0) for a in answers)
        await asyncio.sleep(2.0)
        types_after, sizes_after = _types(args.types_by_size)
        after = tracemalloc.take_snapshot()
        rss_after = usage(me).rss
        heap_after = _heap()
        n = connected or args.charge_points
        print(f"target {args.target} ({args.upstream} upstream): {n} idle charge points")
        print(
            f"RSS growth per charge point (tracemalloc on): {(rss_after - rss_before) / n:,.0f} B"
        )
        stats = after.compare_to(before, "traceback" if args.frames > 1 else "lineno")
        total = sum(s.size_diff for s in stats)
        print(f"traced Python allocations per charge point: {total / n:,.0f} B")
        print(
            "glibc heap in use per charge point (arenas, mmapped chunks): "
            f"{(heap_after[0] - heap_before[0]) / n:,.0f} B, "
            f"{(heap_after[1] - heap_before[1]) / n:,.0f} B"
        )
        print("\nper charge point, by allocation site (bytes, blocks):")
        for stat in stats[: args.top]:
            frames = stat.traceback.format()[-2 * args.frames :]
            where = " <- ".join(line.strip() for line in frames[::2][::-1][:3])
            print(f"{stat.size_diff / n:8.0f} {stat.count_diff / n:5.1f}  {where}")
        print("\nnew objects per charge point, by type:")
        delta = types_after - types_before
        for name, count in delta.most_common(args.top):
            print(f"{count / n:6.2f}  {name}")
        if args.types_by_size:
            print("\nnew object bytes per charge point (sys.getsizeof), by type:")
            grown = sizes_after.copy()
            grown.subtract(sizes_before)
            for name, size in grown.most_common(args.top):
                print(f"{size / n:8.0f}  {name}")
        await loadgen.all("close")
    finally:
        tracemalloc.stop()
        await stop()
        await loadgen.stop()
        csms.stop()
        for proc in brokers:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(store, ignore_errors=True)


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
    parser.add_argument("--upstream", choices=("websocket", "nats", "redis"), default="websocket")
    parser.add_argument("--types-by-size", action="store_true")
    parser.add_argument("--tls", choices=("ec", "rsa"), help="serve wss with this certificate")

    args = parser.parse_args()
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
