"""Shutdown on a broker: every task of the broker transports and the backend API ends when they
are closed, the broker demo exits by itself when its duration ends, and `serve` on a broker
upstream exits within its drain time after SIGTERM (issue: a cancellation swallowed in the
heartbeat loop left the NATS demo hanging at its end)."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import orjson
import pytest

from kit import WAIT, gateway_process, subprocess_env
from ocpp_gateway.aio import stop
from ocpp_gateway.backend import BackendApp, Request
from ocpp_gateway.transports.broker.nats import NatsOptions, NatsTransport
from ocpp_gateway.transports.broker.redis import RedisStreamsOptions, RedisStreamsTransport

from ._support import Broker, backend_broker, broker_server


def _transport(kind: str, url: str) -> Any:
    # node_ttl 0.6 s: the heartbeat loop refreshes the node entry every 0.2 s meanwhile.
    if kind == "nats":
        return NatsTransport("default", NatsOptions(url=url, node_id="n1", node_ttl=0.6))
    return RedisStreamsTransport(
        "default", RedisStreamsOptions(url=url, node_id="n1", node_ttl=0.6)
    )


def _still_running(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    me = asyncio.current_task()
    return [t for t in asyncio.all_tasks() - before if t is not me and not t.done()]


async def test_transport_and_backend_app_leave_no_task_running_after_close(
    server: tuple[str, Broker],
) -> None:
    kind, running = server
    before = asyncio.all_tasks()
    app = BackendApp(backend_broker(kind, running.url))

    @app.on("Heartbeat")
    async def heartbeat(request: Request) -> dict[str, Any]:
        return {"currentTime": "2026-12-07T08:00:00Z"}

    transport = _transport(kind, running.url)
    await app.start()
    runner = asyncio.create_task(app.run())
    await transport.start()
    link = await transport.open("CP-SHUT", ("ocpp1.6",))
    for n in range(3):  # frames through the whole path, while the heartbeat loop runs
        await link.send(orjson.dumps([2, f"s{n}", "Heartbeat", {}]))
        answer = await asyncio.wait_for(link.recv(), WAIT)
        assert answer is not None and orjson.loads(answer)[:2] == [3, f"s{n}"]
    assert _still_running(before), "the transport and the app run tasks while open"

    await link.close()
    await transport.release(link)
    await transport.close()
    await stop([runner])
    await app.stop()
    await asyncio.sleep(0)  # one loop iteration: callbacks of tasks that just ended
    left = _still_running(before)
    assert left == [], [t.get_coro() for t in left]


async def _demo(kind: str) -> tuple[int | None, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocpp_gateway.cli",
        "demo",
        "--transport",
        kind,
        "--charge-points",
        "20",
        "--duration",
        "3",
        "--plain",
        "--port",
        "0",
        "--admin-port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=subprocess_env(),
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        return None, out.decode(errors="replace")
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.parametrize(("kind", "runs"), [("nats", 4), ("redis", 2)])
async def test_the_broker_demo_exits_by_itself_when_its_duration_ends(kind: str, runs: int) -> None:
    binary = "nats-server" if kind == "nats" else "redis-server"
    broker_server("nats" if kind == "nats" else "redis_streams").close()  # fails/skips if absent
    for _ in range(runs):
        code, out = await _demo(kind)
        assert code == 0, f"{binary} demo ended with {code} (None: hung past 60 s):\n{out}"
        assert "backend journal" in out  # its summary, printed after everything stopped


async def test_serve_on_a_broker_exits_within_its_drain_time_after_sigterm(
    server: tuple[str, Broker],
) -> None:
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    kind, running = server
    drain = 2.0
    env = {
        "OCPP_GATEWAY_UPSTREAM_TYPE": kind,
        "OCPP_GATEWAY_UPSTREAM_URL": running.url,
        "OCPP_GATEWAY_UPSTREAM_OPTIONS": orjson.dumps({"node_ttl": 0.6}).decode(),
        "OCPP_GATEWAY_DRAIN_TIMEOUT": str(drain),
        "OCPP_GATEWAY_LOG_LEVEL": "info",
    }
    async with gateway_process(env=env) as gateway:
        # A charge point holds a link (and the node its heartbeat) when SIGTERM arrives.
        async with connect(
            f"{gateway.url}/ocpp/CP-TERM", subprotocols=[Subprotocol("ocpp1.6")]
        ) as ws:
            gateway.signal(signal.SIGTERM)
            # The drain closes the charge point's socket...
            with pytest.raises(Exception):  # noqa: B017 - websockets' ConnectionClosed*
                await asyncio.wait_for(ws.recv(), drain + WAIT)
        # ...and the process exits, well within the drain time plus its start-up margin.
        assert await gateway.wait(drain + 5.0) == 0, "".join(gateway.lines)
