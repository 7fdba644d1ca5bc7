"""Baseline: the cheapest honest relay from charge points to a backend on NATS JetStream.

aiohttp + uvloop server; nats-py client. Each text frame from a charge point is published
unchanged to the wire contract's inbound subject (`ocpp.in.<tx|gen>.<version>.<action>.<cp>`)
with three headers (charge point, OCPP version, reply subject) and handed over once JetStream's
PubAck arrives (one request per frame, as the gateway does); answers of backends arrive on one
core-NATS subscription and go to the charge point named in their header. Nothing is validated,
no ownership is claimed, no epochs or node registry: the floor of the gateway's broker path.
It creates the contract's streams when missing (as the gateway does), so the same backend
program serves both.

    python -m ocpp_gateway.bench.baselines.nats_relay --port 9102 --upstream nats://127.0.0.1:4222
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
    """The process's NATS connection and its charge point sockets by id."""

    def __init__(self, nc: Any, reply: str) -> None:
        self.nc = nc
        self.reply = reply
        self.sockets: dict[str, web.WebSocketResponse[Any]] = {}

    async def on_answer(self, msg: Any) -> None:
        """An answer of a backend: to the charge point its `Ocpp-Cp` header names."""
        ws = self.sockets.get((msg.headers or {}).get("Ocpp-Cp", ""))
        if ws is not None and not ws.closed:
            await ws.send_frame(msg.data, WSMsgType.TEXT)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One charge point: accept, publish every frame, until it leaves."""
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
        headers = {"Ocpp-Cp": charge_point_id, "Ocpp-Proto": version, "Ocpp-Reply": self.reply}
        prefix = f"{VERSION_TOKENS.get(version, '16')}."
        suffix = f".{charge_point_id}"
        self.sockets[charge_point_id] = ws
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                frame = message.data
                parsed = orjson.loads(frame)
                action = parsed[2] if parsed[0] == 2 else "_"
                kind = "tx" if action in TRANSACTION_ACTIONS else "gen"
                subject = f"ocpp.in.{kind}.{prefix}{action}{suffix}"
                reply = await self.nc.request(subject, frame, 5.0, headers=headers)
                if b'"error"' in reply.data:
                    await ws.close(code=1013)
        finally:
            if self.sockets.get(charge_point_id) is ws:
                del self.sockets[charge_point_id]
        return ws


async def healthz(_: web.Request) -> web.Response:
    """200 while serving."""
    return web.Response(text="ok")


async def serve(host: str, port: int, upstream: str) -> None:
    """Run one relay process until SIGTERM."""
    from ocpp_gateway.transports.broker.nats import NatsOptions, connect, ensure_layout

    options = NatsOptions(url=upstream)
    nc = await connect(options, "bare-nats-relay")
    await ensure_layout(nc.jetstream(), options)
    relay = Relay(nc, f"ocpp.gw.bare-{os.getpid()}.res")
    await nc.subscribe(relay.reply, cb=relay.on_answer)
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
    with contextlib.suppress(Exception):
        await nc.close()


def main() -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="nats://HOST:PORT")
    args = parser.parse_args()
    import uvloop

    uvloop.run(serve(args.host, args.port, args.upstream))


if __name__ == "__main__":
    main()
