"""The upstream test CSMS of the benchmarks: answers every CALL with a canned valid result.

It runs as one or more processes sharing a port (SO_REUSEPORT), accepts any path and any of the
OCPP subprotocols, and never initiates calls. Responses are pre-encoded; the only per-frame work
is one `orjson.loads`, so it stays cheap next to the gateway under test.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from multiprocessing.context import SpawnProcess

from aiohttp import WSMsgType, web

from ocpp_gateway.bench.frames import call_result
from ocpp_gateway.bench.procs import raise_nofile_limit
from ocpp_gateway.schemas import VERSIONS

__all__ = ["build_app", "serve", "start_csms"]


# The newest version the charge point offers wins.
SUBPROTOCOLS = tuple(reversed(VERSIONS))


async def _handle(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(
        protocols=SUBPROTOCOLS, decode_text=False, compress=False, max_msg_size=1 << 20
    )
    await ws.prepare(request)
    version = ws.ws_protocol or "ocpp1.6"
    async for message in ws:
        if message.type is not WSMsgType.TEXT:
            continue
        reply = call_result(version, message.data)
        if reply is not None:
            await ws.send_frame(reply, WSMsgType.TEXT)
    return ws


def build_app() -> web.Application:
    """The aiohttp application of the test CSMS: a WebSocket on every path.

    Returns:
        The application.
    """
    app = web.Application()
    app.router.add_get("/{tail:.*}", _handle)
    return app


async def serve(hosts: tuple[str, ...], port: int, stop: asyncio.Event) -> None:
    """Serve the test CSMS until `stop` is set.

    Args:
        hosts: addresses to listen on.
        port: port to listen on (shared with sibling processes through SO_REUSEPORT).
        stop: set it to shut down.
    """
    runner = web.AppRunner(build_app(), access_log=None, handle_signals=False)
    await runner.setup()
    for host in hosts:
        await web.TCPSite(runner, host, port, reuse_port=True, backlog=4096).start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _process_main(hosts: tuple[str, ...], port: int) -> None:
    raise_nofile_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await serve(hosts, port, stop)

    asyncio.run(run())


def start_csms(hosts: tuple[str, ...], port: int, processes: int) -> list[SpawnProcess]:
    """Start the test CSMS as `processes` processes sharing `port` on every one of `hosts`.

    Args:
        hosts: loopback addresses to listen on.
        port: port to listen on.
        processes: how many processes.

    Returns:
        The started processes (terminate them to stop the CSMS); wait for the port to open
        (`procs.wait_tcp_open`) before use.
    """
    context = multiprocessing.get_context("spawn")
    started: list[SpawnProcess] = []
    for _ in range(processes):
        process = context.Process(
            target=_process_main, args=(hosts, port), name="bench-csms", daemon=True
        )
        process.start()
        started.append(process)
    return started
