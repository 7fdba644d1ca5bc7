"""Helpers of the broker tests: real broker servers on loopback ports (the package's
`BrokerServer`), the example backend (in-process or as a process), gateways relaying to a
broker, in-process or as processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from kit import WAIT, GatewayProcess, gateway_process, missing_tool, subprocess_env
from ocpp_gateway.bench.procs import BROKER_KINDS, BrokerServer
from ocpp_gateway.config import load_config
from ocpp_gateway.server import RunningGateway, start_gateway

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "broker_backend.py"


Broker = BrokerServer
BROKERS = BROKER_KINDS


def broker_server(kind: str, durable: bool = False) -> BrokerServer:
    """A started server of the broker kind ("nats" or "redis_streams"); without its binary the
    test is skipped, or fails where the tools are required.

    Args:
        kind: the broker transport.
        durable: Redis only: fsync every write, so that a killed server keeps what it
            acknowledged.

    Returns:
        The running server; the caller closes it.
    """
    try:
        server = BrokerServer(kind, durable)
    except FileNotFoundError as exc:
        missing_tool(str(exc))
    server.start(WAIT)
    return server


def backend_broker(kind: str, url: str, **options: Any) -> Any:
    """The backend API's broker client for `kind`."""
    from ocpp_gateway.backend import NatsBroker, RedisBroker

    if kind == "nats":
        return NatsBroker(url, **options)
    return RedisBroker(url, **options)


def backend_args(kind: str, url: str) -> tuple[str, str]:
    """The example backend's broker flag."""
    return ("--nats", url) if kind == "nats" else ("--redis", url)


def load_example() -> ModuleType:
    """The example backend service's module."""
    from ocpp_gateway.backend import example

    return example


@contextlib.asynccontextmanager
async def broker_gateway(kind: str, url: str, **overrides: Any) -> AsyncIterator[RunningGateway]:
    """An in-process gateway on 127.0.0.1 (any port) whose default backend is a broker."""
    options = {"command_timeout": 10.0, **overrides.pop("options", {})}
    config = load_config(
        None,
        {},
        {
            "host": "127.0.0.1",
            "port": 0,
            "upstream.type": kind,
            "upstream.url": url,
            "upstream.options": options,
            "security.message_rate": 0,
            **overrides,
        },
    )
    gateway = await start_gateway(config)
    try:
        yield gateway
    finally:
        await asyncio.wait_for(gateway.stop(drain_timeout=0.5), WAIT)


class BackendProcess:
    """The example backend as a process (so that a test can kill -9 it)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def ready(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), WAIT)
        assert b"broker backend ready" in line, line

    def kill(self) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    async def wait(self) -> None:
        await asyncio.wait_for(self.proc.wait(), WAIT)


@contextlib.asynccontextmanager
async def nats_gateway(url: str, **overrides: Any) -> AsyncIterator[RunningGateway]:
    """An in-process gateway whose default backend is NATS."""
    async with broker_gateway("nats", url, **overrides) as gateway:
        yield gateway


@contextlib.asynccontextmanager
async def backend_processes() -> AsyncIterator[Callable[..., Any]]:
    """Start example backends with `await start(*args)`; every one is killed at the end."""
    started: list[BackendProcess] = []

    async def start(*args: str) -> BackendProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=subprocess_env(),
        )
        backend = BackendProcess(proc)
        started.append(backend)
        await backend.ready()
        return backend

    try:
        yield start
    finally:
        for backend in started:
            backend.kill()
            await backend.wait()


def journal_rows(path: str) -> list[tuple[str, str, str]]:
    """(action, key, response) of every row of an example backend's journal."""
    if not os.path.exists(path):
        return []
    with contextlib.closing(sqlite3.connect(path, timeout=WAIT)) as db:
        try:
            return list(db.execute("SELECT action, key, response FROM journal"))
        except sqlite3.OperationalError:  # not created yet
            return []


# -- transaction sessions and their accounting ----------------------------------------------------

_T0 = "2026-01-01T00:00:00.000Z"


def session_16(index: int) -> list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]]:
    """A 1.6 charging session: StartTransaction, MeterValues, StopTransaction. Each step builds
    its payload from the answers so far (the transactionId of the start)."""

    def tx(answers: dict[str, Any]) -> int:
        transaction_id: int = answers["StartTransaction"]["transactionId"]
        return transaction_id

    return [
        (
            "StartTransaction",
            lambda a: {
                "connectorId": 1,
                "idTag": f"tag-{index}",
                "meterStart": index,
                "timestamp": _T0,
            },
        ),
        (
            "MeterValues",
            lambda a: {
                "connectorId": 1,
                "transactionId": tx(a),
                "meterValue": [{"timestamp": _T0, "sampledValue": [{"value": str(index)}]}],
            },
        ),
        (
            "StopTransaction",
            lambda a: {"transactionId": tx(a), "meterStop": index + 100, "timestamp": _T0},
        ),
    ]


def session_201(index: int) -> list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]]:
    """A 2.0.1 session: TransactionEvent Started / Updated / Ended, then a security event."""

    def event(kind: str, seq: int, trigger: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        return lambda a: {
            "eventType": kind,
            "timestamp": _T0,
            "triggerReason": trigger,
            "seqNo": seq,
            "transactionInfo": {"transactionId": f"tx-{index}"},
        }

    return [
        ("TransactionEvent", event("Started", 0, "Authorized")),
        ("TransactionEvent", event("Updated", 1, "MeterValuePeriodic")),
        ("TransactionEvent", event("Ended", 2, "StopAuthorized")),
        (
            "SecurityEventNotification",
            lambda a: {"type": f"event-{index}", "timestamp": _T0},
        ),
    ]


@dataclass
class Ledger:
    """What the charge points sent and got, set against the backend's journal.

    sent: transaction messages sent (retries of one message count once);
    acknowledged: those the charger got a CALLRESULT for;
    journaled: those whose business key is in the journal;
    lost: acknowledged but not journaled;
    faked: answers the charger got that differ from the journal's stored answer (or that
        answer nothing journaled);
    callerror: CALLERRORs the charger got for them.
    """

    sent: int = 0
    acknowledged: int = 0
    journaled: int = 0
    lost: int = 0
    faked: int = 0
    callerror: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "journaled": self.journaled,
            "lost": self.lost,
            "faked": self.faked,
            "callerror": self.callerror,
        }


@dataclass
class _Seen:
    charge_point_id: str
    action: str
    payload: dict[str, Any]


def account(messages: list[tuple[str, str, dict[str, Any], list[Any]]], journal: str) -> Ledger:
    """Count a run. `messages`: (charge point id, action, payload, answers the charger got for
    it, over all its attempts: a CALLRESULT payload dict, or a CALLERROR list)."""
    example = load_example()
    stored = {key: orjson.loads(response) for _, key, response in journal_rows(journal)}
    ledger = Ledger()
    for charge_point_id, action, payload, answers in messages:
        ledger.sent += 1
        key = orjson.dumps(example.business_key(_Seen(charge_point_id, action, payload))).decode()
        in_journal = key in stored
        ledger.journaled += in_journal
        results = [a for a in answers if isinstance(a, dict)]
        ledger.callerror += sum(1 for a in answers if not isinstance(a, dict))
        if results:
            ledger.acknowledged += 1
            if not in_journal:
                ledger.lost += 1
        ledger.faked += sum(1 for r in results if not in_journal or r != stored[key])
    return ledger


def answers_for(recorder: Any, unique_id: str) -> list[Any]:
    """The answers a recorded charge point got for one of its CALLs: CALLRESULT payloads
    (dicts) and CALLERROR frames (lists)."""
    found: list[Any] = []
    for text in recorder.received:
        message = orjson.loads(text)
        if message[0] in (3, 4) and message[1] == unique_id:
            found.append(message[2] if message[0] == 3 else message)
    return found


async def send_recorded(peer: Any, version: str, action: str, payload: dict[str, Any]) -> str:
    """Send one CALL with the `ocpp` library; returns its UniqueId whatever the outcome (the
    answers are read from the recorder)."""
    before = len(peer.recorder.sent)
    with contextlib.suppress(Exception):
        await peer.call(version, action, payload)
    unique_id: str = orjson.loads(peer.recorder.sent[before])[1]
    return unique_id


# -- gateway processes and chargers that reconnect and retry -------------------------------------


@dataclass
class GatewayNode:
    """`ocpp-gateway serve` in a process, relaying to a broker as node `node_id`."""

    process: GatewayProcess
    node_id: str

    @property
    def url(self) -> str:
        """ws://127.0.0.1:PORT of its charge point port."""
        return self.process.url

    @property
    def lines(self) -> list[str]:
        """What it logged so far."""
        return self.process.lines

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.process.kill()

    async def wait(self) -> None:
        """Wait for it to exit."""
        await self.process.wait()


@contextlib.asynccontextmanager
async def gateway_nodes(kind: str, url: str) -> AsyncIterator[Callable[..., Any]]:
    """Start gateway processes with `await start(node_id)`; all are killed at the end."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(node_id: str, **options: Any) -> GatewayNode:
            env = {
                "OCPP_GATEWAY_UPSTREAM_TYPE": kind,
                "OCPP_GATEWAY_UPSTREAM_URL": url,
                "OCPP_GATEWAY_UPSTREAM_OPTIONS": orjson.dumps(
                    {"command_timeout": 10.0, "publish_timeout": 3.0, "node_ttl": 3.0, **options}
                ).decode(),
                "OCPP_GATEWAY_NODE_ID": node_id,
                "OCPP_GATEWAY_SECURITY__MESSAGE_RATE": "0",
                # A newcomer waits this long for the takeover ping of a half-open socket.
                "OCPP_GATEWAY_SECURITY__TAKEOVER_PING_TIMEOUT": "1",
                "OCPP_GATEWAY_LOG_LEVEL": "warning",
            }
            process = await stack.enter_async_context(gateway_process(env=env))
            return GatewayNode(process, node_id)

        yield start


class Charger:
    """An `ocpp` library charge point that, like a real one, reconnects (to any of the given
    gateways, in turn) when its socket closes or a handshake is refused, and sends a
    transaction message again until it gets an answer: 1.6 with the same UniqueId, 2.x with a
    new one (both are allowed by the specifications).

    Args:
        charge_point_id: the identity.
        version: the OCPP version.
        urls: gateway base URLs (ws://...) tried in turn; a callable returns the current list.
        attempt_timeout: seconds one attempt waits for its answer.
    """

    def __init__(
        self,
        charge_point_id: str,
        version: str,
        urls: Callable[[], list[str]],
        attempt_timeout: float = 5.0,
    ) -> None:
        self.charge_point_id = charge_point_id
        self.version = version
        self.urls = urls
        self.attempt_timeout = attempt_timeout
        self.peer: Any = None
        self.connections = 0
        self.refused = 0
        self._turn = 0

    async def connect(self, deadline: float) -> Any:
        from websockets.asyncio.client import connect

        from interop.conftest import _make_peer, fixture_responder

        loop = asyncio.get_running_loop()
        while True:
            if self.peer is not None and self.peer.recorder.connection.state.name == "OPEN":
                return self.peer
            urls = self.urls()
            url = urls[self._turn % len(urls)]
            self._turn += 1
            try:
                connection = await asyncio.wait_for(
                    connect(
                        f"{url}/ocpp/{self.charge_point_id}",
                        subprotocols=[self.version],  # type: ignore[list-item]
                        open_timeout=5,
                    ),
                    10,
                )
            except Exception:
                self.refused += 1
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            self.connections += 1
            self.peer = _make_peer(
                self.version, self.charge_point_id, connection, fixture_responder
            )
            return self.peer

    async def send(self, action: str, payload: dict[str, Any], within: float) -> list[Any]:
        """Send until answered (or `within` seconds passed). Returns every answer received,
        over all attempts (CALLRESULT payloads as dicts, CALLERROR frames as lists)."""
        from interop.conftest import request

        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        unique_id: str | None = None
        answers: list[Any] = []
        seen: list[tuple[Any, str]] = []
        while loop.time() < deadline:
            peer = await self.connect(deadline)
            if self.version != "ocpp1.6" or unique_id is None:
                unique_id = str(uuid.uuid4())
            seen.append((peer, unique_id))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    peer.charge_point.call(
                        request(self.version, action, payload), suppress=False, unique_id=unique_id
                    ),
                    self.attempt_timeout,
                )
            answers = []
            unique = {(id(p), u): (p, u) for p, u in seen}
            for attempt_peer, attempt_id in unique.values():
                answers.extend(answers_for(attempt_peer.recorder, attempt_id))
            if any(isinstance(a, dict) for a in answers):
                return answers
            if peer.recorder.connection.state.name == "OPEN":
                # No answer in time on a live socket: a charger would retry on it too.
                continue
        return answers

    async def close(self) -> None:
        if self.peer is not None:
            await self.peer.recorder.connection.close()
            self.peer.task.cancel()
            await asyncio.gather(self.peer.task, return_exceptions=True)


async def run_sessions(
    chargers: list[tuple[Charger, list[Any]]], within: float
) -> list[tuple[str, str, dict[str, Any], list[Any]]]:
    """Run each charger's session (steps of `session_16` / `session_201`) concurrently; returns
    the messages for `account`."""
    messages: list[tuple[str, str, dict[str, Any], list[Any]]] = []

    async def one(charger: Charger, steps: list[Any]) -> None:
        answers: dict[str, Any] = {}
        for action, build in steps:
            payload = build(answers)
            got = await charger.send(action, payload, within)
            messages.append((charger.charge_point_id, action, payload, got))
            results = [a for a in got if isinstance(a, dict)]
            if not results:
                return  # the session cannot go on without its answer
            answers[action] = results[0]

    await asyncio.gather(*(one(c, s) for c, s in chargers))
    return messages


async def owner_of(kind: str, url: str, charge_point_id: str) -> str | None:
    """The node the broker names as the charge point's owner, or None."""
    if kind == "nats":
        import nats
        import nats.js.errors

        nc = await nats.connect(url)
        try:
            kv = await nc.jetstream().key_value("OCPP_OWNER")
            try:
                entry = await kv.get(charge_point_id)
            except nats.js.errors.KeyNotFoundError:
                return None
            node: str = orjson.loads(entry.value or b"{}")["node"]
            return node
        finally:
            await nc.close()
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        value: Any = await client.hget(f"ocpp:owner:{charge_point_id}", "node")
        return None if value is None else str(value.decode())
    finally:
        await client.aclose()
