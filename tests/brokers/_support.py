"""Helpers of the broker tests: real nats-server processes on loopback ports, the example
backend (in-process or as a process), gateways relaying to a broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

import ocpp_gateway
from ocpp_gateway.config import load_config
from ocpp_gateway.server import RunningGateway, start_gateway
from kit import WAIT, poll

__all__ = ["WAIT", "poll"]  # and the helpers below, used by the broker tests
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "broker_backend.py"


def _missing(binary: str) -> None:
    """Skip without the broker server, or fail where the tools are required (.ci/run)."""
    message = f"{binary} is not installed (apt-get install {binary})"
    if os.environ.get("REQUIRE_TEST_TOOLS"):
        pytest.fail(f"REQUIRE_TEST_TOOLS is set but {message}")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    """Poll until `port` accepts connections (or `proc` exited), at most WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not accept on port {port} within {WAIT} s")


def subprocess_env() -> dict[str, str]:
    """The environment for child Pythons: they import the same ocpp_gateway as the tests."""
    env = dict(os.environ)
    python_dir = str(Path(ocpp_gateway.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (python_dir, env.get("PYTHONPATH")) if p)
    return env


class NatsServer:
    """A nats-server with JetStream on 127.0.0.1, its store in a temporary directory.

    `stop` kills it (SIGKILL); `start` starts it again on the same port and store.
    """

    def __init__(self) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            _missing("nats-server")
        self.binary = binary
        self.port = free_port()
        self.store = tempfile.mkdtemp(prefix="nats-store-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc, "nats-server")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(WAIT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)


class RedisServer:
    """A redis-server on 127.0.0.1. Without `durable` it keeps nothing on disk (the fast
    default of the tests); with `durable` it writes an append-only file fsynced on every write
    (`appendfsync always`), so that a server killed with SIGKILL and started again still has
    every entry it acknowledged: the outage tests need that.
    """

    def __init__(self, durable: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("redis-server")
        self.binary = binary
        self.durable = durable
        self.port = free_port()
        self.store = tempfile.mkdtemp(prefix="redis-store-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.durable
            else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                self.store,
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc, "redis-server")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(WAIT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)


Broker = NatsServer | RedisServer
BROKERS = ("nats", "redis_streams")


def broker_server(kind: str, durable: bool = False) -> Broker:
    """A started server of the broker kind ("nats" or "redis_streams")."""
    server: Broker = NatsServer() if kind == "nats" else RedisServer(durable)
    server.start()
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


class GatewayNode:
    """`ocpp-gateway serve` in a process, relaying to a broker as node `node_id`."""

    def __init__(self, proc: asyncio.subprocess.Process, node_id: str) -> None:
        self.proc = proc
        self.node_id = node_id
        self.url = ""
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def started(self) -> None:
        assert self.proc.stderr is not None
        deadline = asyncio.get_running_loop().time() + WAIT
        while not self.url:
            remaining = deadline - asyncio.get_running_loop().time()
            raw = await asyncio.wait_for(self.proc.stderr.readline(), max(0.1, remaining))
            if not raw:
                raise AssertionError(f"gateway {self.node_id} exited: {self.lines}")
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if "listening on " in line:
                self.url = line.rsplit("listening on ", 1)[1].strip()
        self._reader = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            self.lines.append(raw.decode(errors="replace"))

    def kill(self) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    async def wait(self) -> None:
        await asyncio.wait_for(self.proc.wait(), WAIT)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, WAIT)


@contextlib.asynccontextmanager
async def gateway_nodes(kind: str, url: str) -> AsyncIterator[Callable[..., Any]]:
    """Start gateway processes with `await start(node_id)`; all are killed at the end."""
    started: list[GatewayNode] = []

    async def start(node_id: str, **options: Any) -> GatewayNode:
        env = subprocess_env()
        env.update(
            {
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
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ocpp_gateway.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        node = GatewayNode(proc, node_id)
        started.append(node)
        await node.started()
        return node

    try:
        yield start
    finally:
        for node in started:
            node.kill()
            await node.wait()


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
