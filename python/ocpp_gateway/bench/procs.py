"""Processes for benchmarks, the demo and the tests: /proc accounting, ports, a broker server.

CPU time and resident memory read from /proc, fd limits, free ports and waiting for one to open,
and `BrokerServer`: nats-server (JetStream) or redis-server on a loopback port.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp

__all__ = [
    "BROKER_KINDS",
    "BrokerServer",
    "ProcessGroup",
    "Usage",
    "children_of",
    "free_port",
    "raise_nofile_limit",
    "self_cpu",
    "usage",
    "wait_http_ok",
    "wait_tcp_open",
]


_TICKS: float = float(os.sysconf("SC_CLK_TCK"))
_PAGE: int = os.sysconf("SC_PAGE_SIZE")


def raise_nofile_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit.

    Returns:
        The soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`.

    Args:
        host: the address to probe.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Every live descendant of a process (children, grandchildren, ...).

    Args:
        pid: the root process.

    Returns:
        The pids of the descendants, root excluded.
    """
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass(frozen=True)
class Usage:
    """CPU seconds (user + system) and resident bytes of a set of processes at one instant."""

    cpu: float
    rss: int
    processes: int
    at: float


def usage(pids: list[int]) -> Usage:
    """Read the CPU time and RSS of processes from /proc.

    Args:
        pids: the processes; those already gone are skipped.

    Returns:
        Their summed usage, stamped with `time.monotonic()`.
    """
    cpu = 0.0
    rss = 0
    alive = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # Fields after the command name: state is [0], utime [11], stime [12], rss pages [21].
        cpu += (int(fields[11]) + int(fields[12])) / _TICKS
        rss += int(fields[21]) * _PAGE
        alive += 1
    return Usage(cpu=cpu, rss=rss, processes=alive, at=time.monotonic())


class ProcessGroup:
    """A root process and its descendants, measured together (a gateway and its workers)."""

    def __init__(self, root: int, name: str) -> None:
        """Args:
        root: pid of the process that was started.
        name: label used in reports.
        """
        self.root = root
        self.name = name

    def pids(self) -> list[int]:
        """The root and its descendants now alive.

        Returns:
            Pids, root first.
        """
        return [self.root, *children_of(self.root)]

    def usage(self) -> Usage:
        """CPU and RSS of the whole group now.

        Returns:
            The summed usage.
        """
        return usage(self.pids())


def self_cpu() -> float:
    """CPU seconds (user + system) used by this process so far.

    Returns:
        Seconds.
    """
    times = os.times()
    return times.user + times.system


async def wait_http_ok(url: str, limit: float, alive: object = None) -> None:
    """Poll an HTTP endpoint until it answers 200.

    Args:
        url: e.g. "http://127.0.0.1:8080/healthz".
        limit: seconds to give up after.
        alive: optional callable returning False when the server process has died.

    Raises:
        TimeoutError: no 200 within `limit`, or the process died.
    """
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as client:
        while time.monotonic() < deadline:
            if callable(alive) and not alive():
                raise TimeoutError(f"process behind {url} exited")
            try:
                async with client.get(url) as response:
                    if response.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {limit} s")


async def wait_tcp_open(
    host: str, port: int, limit: float, alive: Callable[[], bool] | None = None
) -> None:
    """Poll until a TCP port accepts connections.

    Args:
        host: address.
        port: port.
        limit: seconds to give up after.
        alive: returns False once the process that should open the port has exited.

    Raises:
        TimeoutError: the port did not open in time, or the process exited.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise TimeoutError(f"the process meant to listen on {host}:{port} exited")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"{host}:{port} did not open within {limit} s")


#: The broker transports a `BrokerServer` can serve, by transport type name.
BROKER_KINDS: tuple[str, ...] = ("nats", "redis_streams")
_BROKER_BINARIES = {"nats": "nats-server", "redis_streams": "redis-server"}


class BrokerServer:
    """nats-server with JetStream, or redis-server, on a free 127.0.0.1 port with its store in a
    temporary directory: for the demo, the benchmarks and the tests.

    `stop` kills it (SIGKILL, as a crash would); `start` starts it again on the same port and
    store; `close` stops it and removes the store. As an async context manager it is started
    (without blocking the event loop) and closed.

    Args:
        kind: "nats" or "redis_streams" (the transport type it serves).
        durable: Redis only: an append-only file fsynced on every write, so that a server
            killed and started again still has every entry it acknowledged (without it, Redis
            keeps nothing on disk). A NATS JetStream store is always on disk.
        log: a file the server's output is appended to (default: discarded).
        parent: the directory the temporary store is made in (default: the system's).

    Raises:
        ValueError: an unknown kind.
        FileNotFoundError: the server binary is not installed (the message says which
            Debian package brings it).
    """

    def __init__(
        self,
        kind: str,
        durable: bool = False,
        log: Path | None = None,
        parent: str | None = None,
    ) -> None:
        if kind not in _BROKER_BINARIES:
            raise ValueError(f"unknown broker kind {kind!r}; expected one of {BROKER_KINDS}")
        name = _BROKER_BINARIES[kind]
        binary = shutil.which(name)
        if binary is None:
            raise FileNotFoundError(f"{name} is not installed (apt-get install {name})")
        self.kind = kind
        self.binary = binary
        self.durable = durable
        self.log = log
        self.port = free_port()
        self.store = tempfile.mkdtemp(prefix=f"{name}-store-", dir=parent)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL a client (gateway, backend) connects to."""
        if self.kind == "nats":
            return f"nats://127.0.0.1:{self.port}"
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        """The server's command line.

        Returns:
            The binary and its arguments.
        """
        if self.kind == "nats":
            return [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store]
        persistence = ["yes", "--appendfsync", "always"] if self.durable else ["no"]
        return [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *("--dir", self.store, "--appendonly", *persistence),
        ]

    def start(self, limit: float = 30.0) -> None:
        """Start the server and wait until its port accepts connections (this blocks; from a
        coroutine, use the async context manager or `asyncio.to_thread`).

        Args:
            limit: seconds to give up after.

        Raises:
            RuntimeError: it is already running.
            TimeoutError: it exited, or did not listen within `limit` seconds (it is killed).
        """
        if self.proc is not None:
            raise RuntimeError(f"{self.binary} already runs (pid {self.proc.pid})")
        with open(self.log or os.devnull, "ab") as sink:
            proc = subprocess.Popen(
                self.command(), stdout=sink, stderr=sink, start_new_session=True
            )
        self.proc = proc
        deadline = time.monotonic() + limit
        while True:
            if proc.poll() is not None:
                self.proc = None
                raise TimeoutError(f"{self.binary} exited with status {proc.returncode}")
            with socket.socket() as probe:
                probe.settimeout(0.2)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.binary} did not listen on {self.port} in {limit} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill the server (SIGKILL) if it runs and reap it; the store is kept."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30.0)

    def close(self) -> None:
        """Stop the server and remove its store."""
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)

    async def __aenter__(self) -> BrokerServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
