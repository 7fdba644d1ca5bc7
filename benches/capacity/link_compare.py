"""CPU per round trip of the upstream link alone: aiohttp's client against picows, interleaved.

The gateway's upstream link is one half of every relayed round trip; this isolates it. An echo
server (aiohttp + uvloop, its own process) answers every text frame with the same bytes; in this
process, `--links` links of one client kind send a frame and await its echo, closed loop, for
`--round-trips` round trips. The figure is this process's CPU time (user + system) per round
trip, so the echo server's cost is not in it. Repetitions alternate the two clients so that drift
of a shared machine hits both alike.

    python benches/capacity/link_compare.py --repeats 5 --round-trips 50000 --links 50
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import time

import uvloop

from ocpp_gateway.bench.procs import free_port, wait_tcp_open
from ocpp_gateway.transports.websocket import WebSocketTransport

FRAME = (
    b'[2,"0000000000","StatusNotification",'
    b'{"connectorId":1,"errorCode":"NoError","status":"Available"}]'
)

_ECHO = """
import sys, uvloop
from aiohttp import web, WSMsgType

async def echo(request):
    ws = web.WebSocketResponse(protocols=("ocpp1.6",), decode_text=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_frame(msg.data, WSMsgType.TEXT)
    return ws

app = web.Application()
app.router.add_get("/echo/{id}", echo)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


async def _one(client: str, url: str, links: int, round_trips: int) -> float:
    transport = WebSocketTransport("bench", url, client=client)  # type: ignore[arg-type]
    opened = [await transport.open(f"L{i}", ("ocpp1.6",)) for i in range(links)]
    per_link = round_trips // links

    async def drive(link: object) -> None:
        send = link.send  # type: ignore[attr-defined]
        recv = link.recv  # type: ignore[attr-defined]
        for _ in range(per_link):
            await send(FRAME)
            assert await recv() == FRAME

    await asyncio.gather(*(drive(link) for link in opened[:2]))  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(drive(link) for link in opened))
    after = resource.getrusage(resource.RUSAGE_SELF)
    for link in opened:
        await link.close()
    await transport.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / (per_link * links) * 1e6


def main() -> int:
    """Run the comparison and print a Markdown table.

    Returns:
        0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--round-trips", type=int, default=50000)
    parser.add_argument("--links", type=int, default=50)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", _ECHO, str(port)])
    try:
        uvloop.run(wait_tcp_open("127.0.0.1", port, 30.0, lambda: server.poll() is None))
        url = f"ws://127.0.0.1:{port}/echo"
        results: dict[str, list[float]] = {"aiohttp": [], "picows": []}
        for repeat in range(args.repeats):
            order = ["aiohttp", "picows"] if repeat % 2 == 0 else ["picows", "aiohttp"]
            for client in order:
                started = time.monotonic()
                value = uvloop.run(_one(client, url, args.links, args.round_trips))
                results[client].append(value)
                print(
                    f"{repeat + 1}/{args.repeats} {client:8} {value:6.2f} µs/rt "
                    f"({time.monotonic() - started:.1f} s)",
                    file=sys.stderr,
                )
    finally:
        server.terminate()
        server.wait()
    base = statistics.median(results["aiohttp"])
    print(f"{args.repeats} x {args.round_trips} round trips over {args.links} links")
    print("| upstream client | CPU µs / round trip, each run | median | vs aiohttp |")
    print("|---|---|---:|---:|")
    for client, values in results.items():
        median = statistics.median(values)
        each = ", ".join(f"{v:.2f}" for v in values)
        print(f"| {client} | {each} | {median:.2f} | {median / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
