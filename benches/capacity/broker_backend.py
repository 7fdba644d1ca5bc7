"""The benchmarks' backend service on a broker: answers every CALL with the test CSMS's canned
result (`bench.frames.call_result`), through the `ocpp_gateway.backend` API, journaling nothing.

    python benches/capacity/broker_backend.py --nats nats://127.0.0.1:4222
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import orjson

from ocpp_gateway.backend.app import BackendApp, Request
from ocpp_gateway.bench.frames import call_result


async def main() -> None:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nats")
    parser.add_argument("--redis")
    args = parser.parse_args()
    broker: Any
    if args.redis:
        from ocpp_gateway.backend.redis import RedisBroker

        broker = RedisBroker(args.redis, service="bench", batch=256)
    else:
        from ocpp_gateway.backend.nats import NatsBroker

        broker = NatsBroker(args.nats, service="bench", batch=256)
    app = BackendApp(broker, concurrency=512)

    @app.fallback
    async def answer(request: Request) -> dict[str, Any]:
        reply = call_result(request.ocpp_version, request.frame)
        payload: dict[str, Any] = orjson.loads(reply or b"[3,0,{}]")[2]
        return payload

    await app.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    runner = asyncio.create_task(app.run())
    print("bench backend ready", flush=True)
    await stop.wait()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await app.stop()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
