"""Fixtures of the hostile-input tests: a real gateway on loopback and a probing client."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from kit import WAIT
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.security import SecurityConfig
from ocpp_gateway.server import RunningGateway, start_gateway

_connection_ids = itertools.count()  # a fresh charge point id per connection: no takeovers


def gateway_config(**security: Any) -> GatewayConfig:
    """A loopback gateway with the local responder; the rate limit is off unless given."""
    security.setdefault("message_rate", 0.0)
    return GatewayConfig(host="127.0.0.1", port=0, security=SecurityConfig(**security))


@pytest.fixture
async def gateway() -> AsyncIterator[RunningGateway]:
    gw = await start_gateway(gateway_config())
    try:
        yield gw
    finally:
        await gw.stop(drain_timeout=0)


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[RunningGateway]]]:
    """Start gateways with the given security settings; all are stopped at teardown."""
    started: list[RunningGateway] = []

    async def _start(**security: Any) -> RunningGateway:
        gw = await start_gateway(gateway_config(**security))
        started.append(gw)
        return gw

    yield _start
    for gw in started:
        await gw.stop(drain_timeout=0)


class Probe:
    """A charge point that sends a frame and tells what the gateway answered.

    After each hostile frame it sends a valid Heartbeat: every answer that arrives before the
    Heartbeat's CALLRESULT is the gateway's answer to the hostile frame, so "no answer" is
    observed without waiting for a timeout.
    """

    def __init__(self, url: str, version: str) -> None:
        self.url = url
        self.version = version
        self.ws: ClientConnection | None = None
        self._ids = itertools.count()
        self.reconnects = 0

    async def connect(self) -> ClientConnection:
        if self.ws is None:
            self.ws = await connect(
                f"{self.url}/ocpp/HOSTILE-{next(_connection_ids)}",
                subprotocols=[self.version],  # type: ignore[list-item]
                max_size=None,
                open_timeout=WAIT,
            )
            self.reconnects += 1
        return self.ws

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    async def exchange(self, frame: bytes | str, *, text: bool = True) -> dict[str, Any]:
        """Send one frame, then a Heartbeat probe.

        Returns:
            {"answers": [decoded frames before the probe's result], "close": code or None}
        """
        ws = await self.connect()
        probe_id = f"probe-{next(self._ids)}"
        answers: list[Any] = []
        try:
            await ws.send(frame, text=text)
            await ws.send(json.dumps([2, probe_id, "Heartbeat", {}]))
            async with asyncio.timeout(WAIT):
                while True:
                    raw = await ws.recv()
                    message = json.loads(raw)
                    if isinstance(message, list) and message[:2] == [3, probe_id]:
                        return {"answers": answers, "close": None}
                    answers.append(message)
        except Exception as exc:  # a close, seen through the client's exception
            code = ws.close_code
            self.ws = None
            if code is None:
                raise AssertionError(f"no answer and no close: {exc!r}") from exc
            return {"answers": answers, "close": code}


def matches(expect: dict[str, Any], seen: dict[str, Any]) -> bool:
    """Whether what the gateway did (`seen`, from Probe.exchange) is what `expect` says."""
    if "one_of" in expect:
        return any(matches(option, seen) for option in expect["one_of"])
    if "close" in expect:
        return bool(seen["close"] == expect["close"])
    if seen["close"] is not None:
        return False
    answers = seen["answers"]
    if expect["reply"] is None:
        return not answers
    if len(answers) != 1:
        return False
    answer = answers[0]
    if not (isinstance(answer, list) and len(answer) == 5 and answer[0] == 4):
        return False
    if answer[2] != expect["error_code"] or not isinstance(answer[3], str):
        return False
    if not isinstance(answer[4], dict):
        return False
    uid = expect.get("unique_id")
    return answer[1] == uid if uid is not None else isinstance(answer[1], str)
