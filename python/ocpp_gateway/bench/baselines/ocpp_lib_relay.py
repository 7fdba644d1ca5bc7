"""Baseline: a relay that validates every frame the way the `ocpp` library itself does.

Same relay as bare_relay.py, plus, per frame: `ocpp.messages.unpack` (json.loads + message
classes), and for CALLs and CALLRESULTs `ocpp.messages._validate_payload` (python-jsonschema,
Draft 4, the library's cached validators). The action of a CALLRESULT is taken from the CALL it
answers, as the library does. Invalid frames are answered with the library's CALLERROR. This is
the cost the gateway's Rust core replaces.

    python benches/baselines/ocpp_lib_relay.py --port 9101 --upstream ws://127.0.0.1:9000/ocpp
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
from ocpp.exceptions import OCPPError
from ocpp.messages import (
    Call,
    CallResult,
    _validate_payload,
    unpack,
)

__all__ = ["healthz", "main", "pump", "relay", "run", "serve"]

SUBPROTOCOLS = ("ocpp2.1", "ocpp2.0.1", "ocpp1.6")

Socket = aiohttp.ClientWebSocketResponse[Literal[False]] | web.WebSocketResponse[Any]


async def pump(
    source: Socket, sink: Socket, version: str, mine: dict[str, str], theirs: dict[str, str]
) -> None:
    """Validate text frames from source and copy the valid ones to sink.

    `mine` holds the actions of calls sent by source (awaiting results from sink's side);
    `theirs` those sent by the other side, which results from source answer.
    """
    async for message in source:
        if message.type is not WSMsgType.TEXT:
            continue
        parsed: object = None
        try:
            parsed = unpack(message.data.decode())
            if isinstance(parsed, Call):
                _validate_payload(parsed, version)
                mine[parsed.unique_id] = parsed.action
            elif isinstance(parsed, CallResult):
                parsed.action = theirs.pop(parsed.unique_id, None)
                if parsed.action is None:
                    continue  # answers no pending call: drop
                _validate_payload(parsed, version)
        except OCPPError as error:
            if isinstance(parsed, Call):
                await source.send_str(parsed.create_call_error(error).to_json())
            continue
        await sink.send_frame(message.data, WSMsgType.TEXT)


async def relay(request: web.Request) -> web.StreamResponse:
    """One charge point: accept, open its upstream, validate and relay both ways."""
    charge_point_id = request.match_info["charge_point_id"]
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    client: aiohttp.ClientSession = request.app["client"]
    protocols = [p.strip() for p in offered.split(",") if p.strip() in SUBPROTOCOLS]
    try:
        upstream = await client.ws_connect(
            f"{request.app['upstream']}/{charge_point_id}",
            protocols=protocols[:1],
            decode_text=False,
            autoping=True,
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
    version = (downstream.ws_protocol or "ocpp1.6").removeprefix("ocpp")
    from_cp: dict[str, str] = {}
    from_csms: dict[str, str] = {}
    back = asyncio.create_task(pump(upstream, downstream, version, from_csms, from_cp))
    try:
        await pump(downstream, upstream, version, from_cp, from_csms)
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
