"""Helpers of the broker tests: real nats-server processes on loopback ports, the example
backend (in-process or as a process), gateways relaying to a broker."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import ocpp_gateway
from ocpp_gateway.config import load_config
from ocpp_gateway.server import RunningGateway, start_gateway

WAIT = 30.0  # bound of every wait in these tests, in seconds (the machine is shared)
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "broker_backend.py"


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
            pytest.skip("nats-server is not installed (apt-get install nats-server)")
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


def load_example() -> ModuleType:
    """The example backend module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("broker_backend", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("broker_backend", module)
    spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def nats_gateway(url: str, **overrides: Any) -> AsyncIterator[RunningGateway]:
    """An in-process gateway on 127.0.0.1 (any port) whose default backend is NATS."""
    options = {"command_timeout": 10.0, **overrides.pop("options", {})}
    config = load_config(
        None,
        {},
        {
            "host": "127.0.0.1",
            "port": 0,
            "upstream.type": "nats",
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


async def poll(condition: Callable[[], Any], what: str, within: float = WAIT) -> Any:
    """Wait until `condition()` is truthy (checked every 20 ms), at most `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)
