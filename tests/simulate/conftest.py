"""A raw aiohttp CSMS for the simulator tests: checks every CALL with python-jsonschema."""

from __future__ import annotations

import asyncio
import decimal
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web

from kit import WAIT, serve_app
from ocpp_gateway.simulate.responses import schema_path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"

_ERROR_CODES = {
    "maxLength": "TypeConstraintViolation",
    "type": "TypeConstraintViolation",
    "enum": "PropertyConstraintViolation",
    "required": "OccurrenceConstraintViolation",
}


def load_fixtures(version: str) -> dict[str, dict[str, Any]]:
    """The shared fixture payloads: {action: {"request": ..., "response": ...}}."""
    fixtures: dict[str, dict[str, Any]] = json.loads(
        (FIXTURES / f"{version}.json").read_text(encoding="utf-8")
    )
    return fixtures


_validators: dict[tuple[str, str, bool], jsonschema.protocols.Validator] = {}


def validator(version: str, action: str, response: bool) -> jsonschema.protocols.Validator:
    """A python-jsonschema validator of the official schema (draft-04 for 1.6, else draft-06)."""
    key = (version, action, response)
    if key not in _validators:
        schema = json.loads(Path(schema_path(version, action, response)).read_text("utf-8"))
        cls = jsonschema.Draft4Validator if version == "ocpp1.6" else jsonschema.Draft6Validator
        _validators[key] = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return _validators[key]


def parse(version: str, data: str) -> Any:
    """Parse a frame; 1.6 numbers as Decimal so `multipleOf` is checked exactly."""
    if version == "ocpp1.6":
        return json.loads(data, parse_float=decimal.Decimal)
    return json.loads(data)


@dataclass
class Call:
    """One CALL received by the CSMS."""

    charge_point_id: str
    version: str
    action: str
    payload: Any
    errors: list[str]


@dataclass
class SchemaCsms:
    """A CSMS made of a bare aiohttp server. It validates every CALL against its schema, answers
    valid ones from the shared fixtures (with transaction-friendly overrides), answers invalid
    ones with a CALLERROR, and can send CALLs of its own to a connected charge point."""

    url: str = ""
    boot_statuses: list[str] = field(default_factory=list)
    boot_interval: int = 0
    close_after_boot: bool = False
    refuse_status: int | None = None
    calls: list[Call] = field(default_factory=list)
    remotes: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    handshakes: int = 0
    refused: int = 0
    sockets: dict[str, web.WebSocketResponse] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    pending: dict[str, asyncio.Future[list[Any]]] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def answer(self, version: str, action: str) -> dict[str, Any]:
        if action == "BootNotification":
            status = self.boot_statuses.pop(0) if self.boot_statuses else "Accepted"
            return {
                "status": status,
                "currentTime": "2025-03-14T09:26:53Z",
                "interval": self.boot_interval,
            }
        if action == "Authorize":
            key = "idTagInfo" if version == "ocpp1.6" else "idTokenInfo"
            return {key: {"status": "Accepted"}}
        if action == "StartTransaction":
            return {"transactionId": 4711, "idTagInfo": {"status": "Accepted"}}
        response: dict[str, Any] = load_fixtures(version)[action]["response"]
        return response

    async def handler(self, request: web.Request) -> web.StreamResponse:
        charge_point_id = request.match_info["charge_point_id"]
        ws = web.WebSocketResponse(protocols=("ocpp1.6", "ocpp2.0.1"))
        await ws.prepare(request)
        version = ws.ws_protocol or ""
        self.handshakes += 1
        self.remotes.append(request.remote or "")
        self.authorizations.append(request.headers.get("Authorization"))
        self.sockets[charge_point_id] = ws
        self.versions[charge_point_id] = version
        async with self.changed:
            self.changed.notify_all()
        async for msg in ws:
            frame = parse(version, msg.data)
            if frame[0] == 2:
                await self._on_call(ws, charge_point_id, version, frame)
            elif frame[0] in (3, 4):
                future = self.pending.pop(frame[1], None)
                if future is not None and not future.done():
                    future.set_result(frame)
        return ws

    async def _on_call(
        self, ws: web.WebSocketResponse, charge_point_id: str, version: str, frame: list[Any]
    ) -> None:
        _, unique_id, action, payload = frame
        errors = list(validator(version, action, False).iter_errors(payload))
        self.calls.append(
            Call(charge_point_id, version, action, payload, [e.message for e in errors])
        )
        if errors:
            code = _ERROR_CODES.get(str(errors[0].validator), "FormatViolation")
            await ws.send_str(json.dumps([4, unique_id, code, "invalid", {}]))
        else:
            await ws.send_str(json.dumps([3, unique_id, self.answer(version, action)]))
        async with self.changed:
            self.changed.notify_all()
        if action == "BootNotification" and self.close_after_boot and not errors:
            await ws.close()

    async def call(self, charge_point_id: str, action: str, payload: Any) -> list[Any]:
        """Send a CALL to a connected charge point and return its answer frame."""
        unique_id = f"csms-{next(self._ids)}"
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.pending[unique_id] = future
        await self.sockets[charge_point_id].send_str(json.dumps([2, unique_id, action, payload]))
        return await asyncio.wait_for(future, WAIT)

    def count(self, action: str, *, valid: bool | None = None) -> int:
        return sum(
            1
            for c in self.calls
            if c.action == action and (valid is None or (not c.errors) == valid)
        )

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait (bounded) until `predicate` holds after some CALL arrived."""
        try:
            async with self.changed:
                await asyncio.wait_for(self.changed.wait_for(predicate), WAIT)
        except TimeoutError:
            recent = [(c.charge_point_id, c.action, c.errors) for c in self.calls[-15:]]
            raise AssertionError(f"condition not met; last calls: {recent}") from None


@pytest.fixture
async def csms() -> AsyncIterator[SchemaCsms]:
    """A running SchemaCsms on 127.0.0.1; its `url` is the base for `run_fleet`."""
    server = SchemaCsms()

    async def refuse_or_handle(request: web.Request) -> web.StreamResponse:
        if server.refuse_status is not None:
            server.refused += 1
            async with server.changed:
                server.changed.notify_all()
            return web.Response(status=server.refuse_status)
        return await server.handler(request)

    app = web.Application()
    app.router.add_get("/ocpp/{charge_point_id}", refuse_or_handle)
    runner, port = await serve_app(app)
    server.url = f"ws://127.0.0.1:{port}/ocpp"
    try:
        yield server
    finally:
        await runner.cleanup()
