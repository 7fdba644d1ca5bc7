"""Baseline: the cheapest honest relay from charge points to a backend on Redis Streams.

aiohttp + uvloop server; redis-py (hiredis) client. Each text frame from a charge point is
added unchanged (XADD, awaited) to the wire contract's inbound stream (`ocpp:in:tx|gen`) with
three fields beside it (charge point, OCPP version, reply channel); answers of backends arrive
on one pub/sub channel as the contract's JSON envelope and go to the charge point it names.
Nothing is validated, no ownership is claimed, no epochs: the floor of the gateway's Redis path.

    python -m ocpp_gateway.bench.baselines.redis_relay --port 9103 --upstream redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from typing import Any

import orjson
from aiohttp import WSMsgType, web

__all__ = ["Relay", "healthz", "main", "serve"]

SUBPROTOCOLS = ("ocpp2.1", "ocpp2.0.1", "ocpp1.6")
VERSION_TOKENS = {"ocpp1.6": "16", "ocpp2.0.1": "201", "ocpp2.1": "21"}
TRANSACTION_ACTIONS = frozenset(
    (
        "StartTransaction",
        "StopTransaction",
        "MeterValues",
        "TransactionEvent",
        "SecurityEventNotification",
    )
)


class Relay:
    """The process's Redis client and its charge point sockets by id."""

    def __init__(self, client: Any, reply: str) -> None:
        self.client = client
        self.reply = reply
        self.sockets: dict[str, web.WebSocketResponse[Any]] = {}

    async def listen(self, pubsub: Any) -> None:
        """Answers of backends: each to the charge point its envelope names."""
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            envelope = orjson.loads(message["data"])
            ws = self.sockets.get(envelope.get("cp", ""))
            if ws is not None and not ws.closed:
                await ws.send_frame(envelope["frame"].encode(), WSMsgType.TEXT)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One charge point: accept, add every frame to its stream, until it leaves."""
        charge_point_id = request.match_info["charge_point_id"]
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        protocols = [p.strip() for p in offered.split(",") if p.strip() in SUBPROTOCOLS]
        ws: web.WebSocketResponse[Any] = web.WebSocketResponse(
            protocols=protocols[:1], decode_text=False, compress=False, max_msg_size=1 << 16
        )
        try:
            await ws.prepare(request)
        except (ConnectionError, OSError):
            return ws
        version = ws.ws_protocol or "ocpp1.6"
        self.sockets[charge_point_id] = ws
        client = self.client
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                frame = message.data
                parsed = orjson.loads(frame)
                action = parsed[2] if parsed[0] == 2 else "_"
                stream = "ocpp:in:tx" if action in TRANSACTION_ACTIONS else "ocpp:in:gen"
                fields = {
                    "frame": frame,
                    "Ocpp-Cp": charge_point_id,
                    "Ocpp-Proto": version,
                    "Ocpp-Reply": self.reply,
                }
                await client.xadd(stream, fields)
        finally:
            if self.sockets.get(charge_point_id) is ws:
                del self.sockets[charge_point_id]
        return ws


async def healthz(_: web.Request) -> web.Response:
    """200 while serving."""
    return web.Response(text="ok")


async def serve(host: str, port: int, upstream: str) -> None:
    """Run one relay process until SIGTERM."""
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis.from_url(upstream)
    relay = Relay(client, f"ocpp:gw:bare-{os.getpid()}:res")
    pubsub = client.pubsub()
    await pubsub.subscribe(relay.reply)
    listener = asyncio.create_task(relay.listen(pubsub))
    app = web.Application()
    app.router.add_get("/ocpp/{charge_point_id}", relay.handle)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, reuse_port=True, backlog=4096).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()
    listener.cancel()
    with contextlib.suppress(BaseException):
        await listener
    with contextlib.suppress(Exception):
        await client.aclose()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="redis://HOST:PORT/DB")
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port, args.upstream))


if __name__ == "__main__":
    main()
