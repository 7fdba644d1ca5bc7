"""An observer and a controller SIGKILLed under transacting charge points: the charge points
and the primary never notice, what the second backends missed is counted, and they get the
charge points' calls again once they are back (the gateway reconnects them by itself)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.protocol import State

from interop.conftest import Peer
from kit import poll
from ocpp_gateway.admin import describe

from .conftest import WAIT, Fleet, csms_server, gateway_with

V16 = "ocpp1.6"
CHARGE_POINTS = 100
QUEUE = 10  # frames kept per second backend and charge point while it is down
PACE = 0.02  # seconds between two calls of one charge point (a shared machine)
SCRIPT = Path(__file__).with_name("csms_process.py")


@dataclass
class Process:
    """A library CSMS in its own process (csms_process.py), its output lines kept."""

    args: tuple[str, ...]
    port: int = 0
    lines: list[str] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.lines = []
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            str(self.port),
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ},
        )
        self.proc = proc
        self.reader = asyncio.ensure_future(self._read())
        first = await poll(lambda: self.lines and self.lines[0], "the CSMS process listens")
        assert first.startswith("listening ")
        self.port = int(first.split()[1])

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(line.decode().strip())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            await asyncio.wait_for(self.proc.wait(), WAIT)
        if self.reader is not None:
            await asyncio.wait_for(self.reader, WAIT)

    def callers(self) -> set[str]:
        return {line.split()[1] for line in self.lines if line.startswith("call ")}

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/csms"


@contextlib.asynccontextmanager
async def process(*args: str) -> AsyncIterator[Process]:
    proc = Process(args)
    await proc.start()
    try:
        yield proc
    finally:
        await proc.stop()


@dataclass
class Counts:
    sent: int = 0
    acked: int = 0
    errors: int = 0


async def transact(cp: Peer, counts: Counts, stop: asyncio.Event) -> None:
    """Transactions, one call after another, until `stop`: Start, 2 MeterValues, Stop."""

    async def call(action: str, payload: dict[str, Any]) -> Any:
        counts.sent += 1
        try:
            answer = await cp.call(V16, action, payload)
        except Exception:
            counts.errors += 1
            raise
        counts.acked += 1
        await asyncio.sleep(PACE)  # pacing the load, not waiting for anything
        return answer

    stamp = "2026-01-01T00:00:00Z"
    while not stop.is_set():
        started = await call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": stamp},
        )
        tx = started.transaction_id
        for value in ("10", "20"):
            await call(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tx,
                    "meterValue": [{"timestamp": stamp, "sampledValue": [{"value": value}]}],
                },
            )
        await call("StopTransaction", {"transactionId": tx, "meterStop": 30, "timestamp": stamp})


async def test_observer_and_controller_killed_under_transactions() -> None:
    async with (
        csms_server() as primary,
        process() as observer,
        process("0.1") as controller,
    ):
        backends = {
            "reporting": {"role": "observer", "url": observer.url, "queue_frames": QUEUE},
            "ems": {
                "role": "controller",
                "url": controller.url,
                "commands": ["DataTransfer"],
                "queue_frames": QUEUE,
            },
        }
        async with gateway_with(primary.url, backends) as gateway:
            fleet = Fleet(gateway)
            stop = asyncio.Event()
            counts = Counts()
            ids = [f"TX-{n:03d}" for n in range(CHARGE_POINTS)]
            sample = gateway.runtime.metrics.registry.get_sample_value

            def metric(name: str, backend: str, role: str) -> float:
                return sample(name, {"backend": backend, "role": role}) or 0.0

            def states() -> set[str]:
                return {
                    side["state"]
                    for conn in gateway.registry.live.values()
                    for side in describe(gateway.runtime, conn)["backends"]
                }

            try:
                cps = [await fleet.connect(cp_id, V16) for cp_id in ids]
                loops = [asyncio.ensure_future(transact(cp, counts, stop)) for cp in cps]
                await poll(lambda: observer.callers() == set(ids), "the observer sees all")
                await poll(lambda: controller.callers() == set(ids), "the controller sees all")
                await poll(
                    lambda: sum(line.startswith("answer ") for line in controller.lines) >= 10,
                    "the controller's commands answered",
                )
                observer.kill()
                controller.kill()
                await poll(lambda: states() == {"down"}, "every second link seen down")
                for name, role in (("reporting", "observer"), ("ems", "controller")):

                    def drop_counted(n: str = name, r: str = role) -> bool:
                        return metric("ocpp_gateway_backend_dropped_frames_total", n, r) > 0

                    await poll(
                        drop_counted,
                        f"frames for the dead {role} dropped and counted",
                    )
                acked_while_down = counts.acked
                await poll(lambda: counts.acked > acked_while_down + CHARGE_POINTS, "going on")
                await observer.start()
                await controller.start()
                await poll(lambda: states() == {"up"}, "every second link up again")
                await poll(lambda: observer.callers() == set(ids), "the observer recovered")
                await poll(lambda: controller.callers() == set(ids), "the controller recovered")
                for name, role in (("reporting", "observer"), ("ems", "controller")):
                    reconnects = metric("ocpp_gateway_backend_reconnects_total", name, role)
                    assert reconnects >= CHARGE_POINTS
                stop.set()
                await asyncio.wait_for(asyncio.gather(*loops), WAIT)
                journaled = sum([len((await primary.peer(cp_id)).handled) for cp_id in ids])
                lost = counts.sent - journaled
                faked = counts.acked - journaled
                dropped = [
                    metric("ocpp_gateway_backend_dropped_frames_total", name, role)
                    for name, role in (("reporting", "observer"), ("ems", "controller"))
                ]
                print(  # the fault counts for the closing note (pytest -s)
                    f"sent={counts.sent} acked={counts.acked} journaled={journaled} "
                    f"lost={lost} faked={faked} callerror={counts.errors} dropped={dropped}"
                )
                assert (lost, faked, counts.errors) == (0, 0, 0)
                assert counts.sent == counts.acked > 0
                # No charge point was closed.
                assert all(cp.recorder.connection.state is State.OPEN for cp in cps)
                assert len(gateway.registry.live) == CHARGE_POINTS
                closed = gateway.runtime.metrics.registry.get_sample_value(
                    "ocpp_gateway_connections_closed_total", {"reason": "upstream_lost"}
                )
                assert not closed
            finally:
                stop.set()
                await fleet.close()
