"""Baseline: the cheapest honest OCPP-J relay (aiohttp + uvloop), validating nothing.

For each charge point that connects to /ocpp/{id} it opens {upstream}/{id} with the same
subprotocol and copies text frames both ways, as bytes. It is the floor the gateway's CPU and
memory per charge point are compared with.

    python benches/baselines/bare_relay.py --port 9100 --upstream ws://127.0.0.1:9000/ocpp
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import resource
import signal
from typing import Any, Literal

import aiohttp
from aiohttp import WSMsgType, web

__all__ = ["healthz", "main", "pump", "relay", "run", "serve"]

SUBPROTOCOLS = ("ocpp2.1", "ocpp2.0.1", "ocpp1.6")


Socket = aiohttp.ClientWebSocketResponse[Literal[False]] | web.WebSocketResponse[Any]


async def pump(source: Socket, sink: Socket) -> None:
    """Copy text frames from source to sink until source closes."""
    async for message in source:
        if message.type is WSMsgType.TEXT:
            await sink.send_frame(message.data, WSMsgType.TEXT)


async def relay(request: web.Request) -> web.StreamResponse:
    """One charge point: accept, open its upstream, relay both ways, close both together."""
    charge_point_id = request.match_info["charge_point_id"]
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    client: aiohttp.ClientSession = request.app["client"]
    upstream_url = f"{request.app['upstream']}/{charge_point_id}"
    protocols = [p.strip() for p in offered.split(",") if p.strip() in SUBPROTOCOLS]
    try:
        upstream = await client.ws_connect(
            upstream_url, protocols=protocols[:1], decode_text=False, autoping=True
        )
    except (aiohttp.ClientError, OSError):
        raise web.HTTPServiceUnavailable() from None
    downstream = web.WebSocketResponse(
        protocols=protocols[:1], decode_text=False, compress=False, max_msg_size=1 << 16
    )
    try:
        await downstream.prepare(request)
    except (ConnectionError, OSError):  # the charge point left during the handshake
        await upstream.close()
        return downstream
    back = asyncio.create_task(pump(upstream, downstream))
    try:
        await pump(downstream, upstream)
    finally:
        back.cancel()
        with contextlib.suppress(Exception):
            await upstream.close()
        with contextlib.suppress(Exception):
            await downstream.close()
    return downstream


async def healthz(_: web.Request) -> web.Response:
    """200 while serving."""
    return web.Response(text="ok")


async def serve(host: str, port: int, upstream: str) -> None:
    """Run one relay process until SIGTERM."""
    app = web.Application()
    app["upstream"] = upstream.rstrip("/")
    app["client"] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )
    app.router.add_get("/ocpp/{charge_point_id}", relay)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=True, backlog=4096).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()
    await app["client"].close()


def run(host: str, port: int, upstream: str) -> None:
    """Process entry: raise the fd limit, install uvloop, serve."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(serve(host, port, upstream))


def main() -> None:
    """Parse flags and start --workers processes sharing the port."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.workers == 1:
        run(args.host, args.port, args.upstream)
        return
    workers = [
        multiprocessing.Process(target=run, args=(args.host, args.port, args.upstream))
        for _ in range(args.workers)
    ]
    for worker in workers:
        worker.start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
