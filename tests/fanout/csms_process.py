"""A library CSMS in a process of its own, for the tests that SIGKILL a second backend.

Usage: python csms_process.py PORT [COMMAND_INTERVAL]

Serves `ocpp` library 1.6 CSMS peers on 127.0.0.1:PORT (0: any), prints "listening PORT",
then one line "call <charge point id> <action>" per call it handles, and, when
COMMAND_INTERVAL > 0, sends each charge point a DataTransfer that often (a controller's
commands), printing "answer <charge point id>" per answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import websockets
from websockets.asyncio.server import ServerConnection, serve

from interop.conftest import fixture_responder, library_class, request

V16 = "ocpp1.6"


def main() -> None:
    port = int(sys.argv[1])
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    asyncio.run(serve_forever(port, interval))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve_forever(port: int, interval: float) -> None:
    def responder(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        return fixture_responder(version, action, kwargs)

    cls = library_class(V16, responder)

    async def handler(connection: ServerConnection) -> None:
        path = connection.request.path if connection.request else ""
        cp_id = path.rsplit("/", 1)[-1]
        peer = cls(cp_id, connection, response_timeout=30)
        peer.handled = []
        original = peer.route_message

        async def route(message: str) -> None:
            if message.startswith("[2"):
                action = message.split(",", 3)[2].strip().strip('"')
                say(f"call {cp_id} {action}")
            await original(message)

        peer.route_message = route
        commands = asyncio.ensure_future(command(peer, cp_id, interval)) if interval else None
        with contextlib.suppress(websockets.ConnectionClosed):
            await peer.start()
        if commands is not None:
            commands.cancel()

    async with serve(handler, "127.0.0.1", port, subprotocols=[V16]) as server:  # type: ignore[list-item]
        say(f"listening {next(iter(server.sockets)).getsockname()[1]}")
        await asyncio.Future()


async def command(peer: Any, cp_id: str, interval: float) -> None:
    n = 0
    while True:
        await asyncio.sleep(interval)
        n += 1
        payload = {"vendorId": "org.example", "data": f"{cp_id}/{n}"}
        with contextlib.suppress(Exception):
            await peer.call(request(V16, "DataTransfer", payload), suppress=False)
            say(f"answer {cp_id}")


if __name__ == "__main__":
    main()
