"""Load-generator processes: each holds many charge point WebSockets and drives calls on command.

(Over 600 lines on purpose: `Worker` is one class because every scenario it runs (connect,
closed loop, paced, sample, storm, TLS variants) works on the same table of open connections and
the same recorder; split, each part would reach into the others' state.)

The parent (`LoadGenerator`) talks to each worker process over a pipe: connect a slice of the
fleet, run a closed-loop or paced phase, sample heartbeats, reconnect everything at once, report.
Frames are pre-encoded (`frames.CallTemplate`); each connection has one reader task that matches
results to calls by UniqueId. Every worker measures its own CPU time so the parent can tell
whether the load generator, rather than the system under test, was the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import signal
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import WSMsgType

from ocpp_gateway.bench.frames import MIX, CallTemplate, answered_unique_id
from ocpp_gateway.bench.procs import raise_nofile_limit, self_cpu

__all__ = ["LoadGenerator", "LoadGeneratorError", "Worker", "bound_socket_factory"]


_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


#: Linux IP_BIND_ADDRESS_NO_PORT (not exported by the socket module).
IP_BIND_ADDRESS_NO_PORT = 24


def bound_socket_factory(local_addr: str) -> Callable[[Any], socket.socket]:
    """A socket factory for aiohttp that binds the source address but not the port.

    A plain bind((addr, 0)) reserves a port number for the whole host, whatever the address,
    so tens of thousands of load-generator sockets would exhaust the ephemeral ports that the
    relay under test needs for its own upstream connections. With IP_BIND_ADDRESS_NO_PORT the
    port is chosen at connect() time, per 4-tuple, and port numbers are shared.

    Args:
        local_addr: the source address, e.g. "127.0.1.1".

    Returns:
        The factory (`aiohttp.TCPConnector(socket_factory=...)`).
    """

    def factory(addr_info: Any) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((local_addr, 0))
        except OSError:
            sock.close()
            raise
        return sock

    return factory


class _Link:
    """One charge point connection held by a worker."""

    __slots__ = ("charge_point_id", "pending", "reader", "seq", "url", "version", "ws")

    def __init__(
        self,
        url: str,
        charge_point_id: str,
        version: str,
        ws: aiohttp.ClientWebSocketResponse[Literal[False]],
    ) -> None:
        self.url = url
        self.charge_point_id = charge_point_id
        self.version = version
        self.ws = ws
        self.pending: dict[bytes, asyncio.Future[int]] = {}
        self.seq = 0
        self.reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        ws = self.ws
        try:
            while True:
                message = await ws.receive()
                if message.type is WSMsgType.TEXT:
                    kind, unique_id = answered_unique_id(message.data)
                    future = self.pending.pop(unique_id, None)
                    if future is not None and not future.done():
                        future.set_result(kind)
                elif message.type in _CLOSED:
                    break
        finally:
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))
            self.pending.clear()

    async def call(self, template: CallTemplate) -> int:
        """Send one CALL and wait for its answer; returns the answer's MessageTypeId."""
        self.seq += 1
        unique_id = b"%x" % self.seq
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending[unique_id] = future
        await self.ws.send_frame(template.frame(unique_id), WSMsgType.TEXT)
        return await future


class _Recorder:
    """Latencies and counts of the calls completed inside a measurement window."""

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.latencies: list[float] = []
        self.by_action: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.failed = 0

    def record(self, action: str, sent: float, kind: int) -> None:
        done = time.monotonic()
        if self.start <= done <= self.end:
            self.latencies.append(done - sent)
            self.by_action[action] += 1
            if kind != 3:
                self.errors[action] += 1

    def result(self, cpu: float, wall: float) -> dict[str, Any]:
        return {
            "latencies": self.latencies,
            "by_action": dict(self.by_action),
            "errors": dict(self.errors),
            "failed": self.failed,
            "cpu": cpu,
            "wall": wall,
        }


class Worker:
    """The state of one load-generator process: its connections and HTTP client."""

    def __init__(self, local_addr: str | None) -> None:
        """Args:
        local_addr: source address of this worker's sockets (e.g. "127.0.1.1"), or None.
        """
        self.local_addr = local_addr
        self.links: list[_Link] = []
        self._client: aiohttp.ClientSession | None = None
        self._templates: dict[str, dict[str, CallTemplate]] = {}
        self._fleets: list[tuple[Any, asyncio.Event, asyncio.Task[None]]] = []
        self._tls: ssl.SSLContext | None = None
        self._client_certs: str | None = None
        self._password: str | None = None
        self._ca_pem = ""

    async def configure_tls(
        self, ca: str | None = None, client_certs: str | None = None, password: str | None = None
    ) -> dict[str, Any]:
        """Settings of the next connections to wss:// URLs (security profiles 2 and 3).

        Args:
            ca: PEM file of the CA the server certificate chains to (None: plain ws again).
            client_certs: a directory holding `{charge_point_id}.pem` and `.key`: each charge
                point presents its own client certificate (profile 3).
            password: HTTP Basic auth password, sent with the charge point id as user name.

        Returns:
            {"ok": True}.
        """
        self._tls = None
        if ca is not None:
            self._tls = ssl.create_default_context(cafile=ca)
            self._ca_pem = Path(ca).read_text()  # noqa: ASYNC240 - a small file, once
        self._client_certs = client_certs
        self._password = password
        return {"ok": True}

    def _ssl_for(self, charge_point_id: str) -> ssl.SSLContext | bool:
        """The TLS context of one charge point's connection (its own with client certificates)."""
        if self._tls is None:
            return True  # aiohttp's default for wss://: the system's trust store
        if self._client_certs is None:
            return self._tls
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cadata=self._ca_pem)
        folder = self._client_certs
        context.load_cert_chain(
            f"{folder}/{charge_point_id}.pem", f"{folder}/{charge_point_id}.key"
        )
        return context

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:
            connector = aiohttp.TCPConnector(
                limit=0,
                use_dns_cache=True,
                socket_factory=bound_socket_factory(self.local_addr) if self.local_addr else None,
            )
            self._client = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None)
            )
        return self._client

    def _template(self, version: str, action: str) -> CallTemplate:
        by_action = self._templates.setdefault(version, {})
        template = by_action.get(action)
        if template is None:
            template = by_action[action] = CallTemplate(version, action)
        return template

    async def _open(
        self, url: str, charge_point_id: str, version: str, boot: bool, limit: float
    ) -> tuple[_Link | None, str]:
        """Open one connection (and boot it); returns (link, "") or (None, failure reason)."""
        try:
            async with asyncio.timeout(limit):
                ws = await self._session().ws_connect(
                    f"{url}/{charge_point_id}",
                    ssl=self._ssl_for(charge_point_id),
                    auth=None
                    if self._password is None
                    else aiohttp.BasicAuth(charge_point_id, self._password),
                    protocols=(version,),
                    decode_text=False,
                    autoping=True,
                    max_msg_size=1 << 20,
                )
        except aiohttp.WSServerHandshakeError as error:
            return None, f"http_{error.status}"
        except TimeoutError:
            return None, "timeout"
        except (aiohttp.ClientError, OSError) as error:
            return None, type(error).__name__
        link = _Link(url, charge_point_id, version, ws)
        link.reader = asyncio.create_task(link.read())
        if ws.protocol != version:
            await self._close_link(link)
            return None, "no_subprotocol"
        if boot:
            try:
                async with asyncio.timeout(limit):
                    kind = await link.call(self._template(version, "BootNotification"))
            except (TimeoutError, ConnectionError):
                await self._close_link(link)
                return None, "boot_unanswered"
            if kind != 3:
                await self._close_link(link)
                return None, "boot_rejected"
        return link, ""

    async def _close_link(self, link: _Link) -> None:
        if link.reader is not None:
            link.reader.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await link.ws.close()

    async def connect(
        self,
        fleet: Sequence[tuple[str, str, str]],
        concurrency: int = 100,
        boot: bool = True,
        limit: float = 30.0,
    ) -> dict[str, Any]:
        """Open and boot connections for a slice of the fleet.

        Args:
            fleet: (base URL, charge point id, subprotocol); each connects to `{url}/{id}`.
            concurrency: handshakes in flight at once.
            boot: send a BootNotification on each new connection.
            limit: seconds allowed per handshake and per boot.

        Returns:
            {"connected", "failures" (reason -> count), "seconds", "cpu", "total"}.
        """
        semaphore = asyncio.Semaphore(concurrency)
        failures: Counter[str] = Counter()
        started, cpu0 = time.monotonic(), self_cpu()

        async def one(url: str, charge_point_id: str, version: str) -> None:
            async with semaphore:
                link, reason = await self._open(url, charge_point_id, version, boot, limit)
            if link is None:
                failures[reason] += 1
            else:
                self.links.append(link)

        await asyncio.gather(*(one(url, cp, version) for url, cp, version in fleet))
        return {
            "connected": len(fleet) - sum(failures.values()),
            "failures": dict(failures),
            "seconds": time.monotonic() - started,
            "cpu": self_cpu() - cpu0,
            "total": len(self.links),
        }

    async def closed_loop(
        self,
        start: float,
        end: float,
        actions: Sequence[str] | None = None,
        drivers: int | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Every connection sends CALLs back to back, one outstanding, until `end`.

        Args:
            start: monotonic time at which measurement begins (calls before it warm up).
            end: monotonic time at which the phase stops.
            actions: the actions to cycle through; None uses the version's busy mix.
            drivers: how many of the connections send (the others stay idle); None for all.
            version: only connections of this subprotocol send; None for all.

        Returns:
            Calls, latencies and errors completed in [start, end], and this worker's CPU time.
        """
        recorder = _Recorder(start, end)

        async def drive(link: _Link) -> None:
            names = tuple(actions) if actions else MIX[link.version]
            templates = [self._template(link.version, name) for name in names]
            index = random.randrange(len(templates))
            while time.monotonic() < end:
                template = templates[index % len(templates)]
                index += 1
                sent = time.monotonic()
                try:
                    kind = await link.call(template)
                except ConnectionError:
                    recorder.failed += 1
                    return
                recorder.record(template.action, sent, kind)

        return await self._run_phase(drive, recorder, start, end, drivers, version)

    async def paced(
        self,
        start: float,
        end: float,
        rate: float,
        actions: Sequence[str] | None = None,
        drivers: int | None = None,
    ) -> dict[str, Any]:
        """Open-loop load: the worker's connections together send `rate` CALLs per second.

        Latency is measured from each call's scheduled time, not from when it was sent, so a
        stalled system is not flattered (no coordinated omission).

        Args:
            start: monotonic time at which measurement begins.
            end: monotonic time at which the phase stops.
            rate: calls per second for this worker, spread evenly over its connections.
            actions: actions to cycle through; None uses the version's busy mix.
            drivers: how many of the connections send (the others stay idle); None for all.

        Returns:
            As `closed_loop`.
        """
        recorder = _Recorder(start, end)
        count = len(self.links) if drivers is None else min(drivers, len(self.links))
        interval = count / rate if rate > 0 else float("inf")

        async def drive(link: _Link) -> None:
            names = tuple(actions) if actions else MIX[link.version]
            templates = [self._template(link.version, name) for name in names]
            index = random.randrange(len(templates))
            due = time.monotonic() + random.uniform(0, interval)
            while due < end:
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                template = templates[index % len(templates)]
                index += 1
                try:
                    kind = await link.call(template)
                except ConnectionError:
                    recorder.failed += 1
                    return
                recorder.record(template.action, due, kind)
                due += interval

        return await self._run_phase(drive, recorder, start, end, drivers, None)

    async def sample(self, count: int, spread: float, action: str = "Heartbeat") -> dict[str, Any]:
        """Send one call from each of `count` random connections, spread over `spread` seconds.

        Args:
            count: connections to sample (capped at the number held).
            spread: seconds over which the calls are scattered.
            action: the action to send.

        Returns:
            {"latencies", "failed", "errors"}.
        """
        chosen = random.sample(self.links, min(count, len(self.links)))
        latencies: list[float] = []
        errors = 0
        failed = 0

        async def one(link: _Link) -> None:
            nonlocal errors, failed
            await asyncio.sleep(random.uniform(0, spread))
            sent = time.monotonic()
            try:
                async with asyncio.timeout(30.0):
                    kind = await link.call(self._template(link.version, action))
            except (TimeoutError, ConnectionError):
                failed += 1
                return
            latencies.append(time.monotonic() - sent)
            if kind != 3:
                errors += 1

        await asyncio.gather(*(one(link) for link in chosen))
        return {"latencies": latencies, "failed": failed, "errors": errors}

    async def storm(
        self,
        deadline: float,
        max_backoff: float = 2.0,
        move: dict[str, str] | None = None,
        only: list[str] | None = None,
    ) -> dict[str, Any]:
        """Drop every connection, then reconnect and boot all of them at once.

        Charge points whose handshake or boot fails retry with jittered exponential backoff
        (as real chargers do) until `deadline`.

        Args:
            deadline: monotonic time after which charge points stop retrying.
            max_backoff: cap of the retry delay in seconds.
            move: base URL -> base URL the charge points of the first reconnect to (another
                gateway node, as a load balancer sends them when a node goes away).
            only: drop and reconnect only the links to these base URLs (all when None); the
                others stay connected.

        Returns:
            {"charge_points" (dropped), "booted" (of those, back), "seconds" (until the last
            boot), "refused" (reason -> count of failed attempts), "cpu"}.
        """
        moved = move or {}
        dropped = [link for link in self.links if only is None or link.url in only]
        fleet = [
            (moved.get(link.url, link.url), link.charge_point_id, link.version) for link in dropped
        ]
        await asyncio.gather(*(self._close_link(link) for link in dropped))
        self.links = [link for link in self.links if only is not None and link.url not in only]
        refused: Counter[str] = Counter()
        started, cpu0 = time.monotonic(), self_cpu()
        last_boot = started
        booted = 0

        async def one(url: str, charge_point_id: str, version: str) -> None:
            nonlocal last_boot, booted
            backoff = 0.1
            while time.monotonic() < deadline:
                remaining = max(0.1, deadline - time.monotonic())
                link, reason = await self._open(
                    url, charge_point_id, version, True, min(30.0, remaining)
                )
                if link is not None:
                    self.links.append(link)
                    booted += 1
                    last_boot = max(last_boot, time.monotonic())
                    return
                refused[reason] += 1
                await asyncio.sleep(random.uniform(0.5, 1.0) * backoff)
                backoff = min(max_backoff, backoff * 2)

        await asyncio.gather(*(one(url, cp, version) for url, cp, version in fleet))
        return {
            "charge_points": len(fleet),
            "booted": booted,
            "seconds": last_boot - started,
            "refused": dict(refused),
            "cpu": self_cpu() - cpu0,
        }

    async def fleet_start(
        self,
        url: str,
        charge_point_ids: Sequence[str],
        profile: str,
        ramp_seconds: float = 0.0,
        limit: float = 60.0,
    ) -> dict[str, Any]:
        """Start the package's simulator (`simulate.run_fleet`) and wait until all have booted.

        Args:
            url: base URL the simulated charge points connect to.
            charge_point_ids: one simulated charge point per id.
            profile: a key of `ocpp_gateway.simulate.PROFILES`.
            ramp_seconds: spread the first connections over this many seconds.
            limit: seconds to wait for every charge point to boot.

        Returns:
            {"booted", "connected", "seconds"}.
        """
        from ocpp_gateway.simulate import PROFILES, FleetStats, run_fleet

        count = len(charge_point_ids)
        stats = FleetStats()
        stop = asyncio.Event()
        started = time.monotonic()
        task = asyncio.create_task(
            run_fleet(
                url,
                charge_point_ids,
                PROFILES[profile],
                stats=stats,
                stop=stop,
                ramp_seconds=ramp_seconds,
                local_addrs=[self.local_addr] if self.local_addr else (),
            )
        )
        self._fleets.append((stats, stop, task))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                await stats.wait_for(lambda s: s.booted >= count)
        return {
            "booted": stats.booted,
            "connected": stats.connected,
            "seconds": time.monotonic() - started,
        }

    async def fleet_measure(self, start: float, end: float) -> dict[str, Any]:
        """Measure the running simulated fleets between `start` and `end`, then stop them.

        Args:
            start: monotonic time of the first snapshot.
            end: monotonic time of the second.

        Returns:
            Answered calls, errors, timeouts and CALLs received, by action, counted between the
            two snapshots; latency percentiles (ms) of the whole run; this worker's CPU time.
        """
        from ocpp_gateway.simulate import quantile

        await asyncio.sleep(max(0.0, start - time.monotonic()))
        first = [stats.snapshot() for stats, _, _ in self._fleets]
        cpu0, wall0 = self_cpu(), time.monotonic()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        last = [stats.snapshot() for stats, _, _ in self._fleets]
        cpu, wall = self_cpu() - cpu0, time.monotonic() - wall0
        answered: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        timeouts: Counter[str] = Counter()
        received: Counter[str] = Counter()
        histogram: list[int] = []
        for before, after in zip(first, last, strict=True):
            answered.update(after.answered)
            answered.subtract(before.answered)
            errors.update(after.errors)
            errors.subtract(before.errors)
            timeouts.update(after.timeouts)
            timeouts.subtract(before.timeouts)
            received.update(after.received_calls)
            received.subtract(before.received_calls)
            diff = [b - a for a, b in zip(before.latency, after.latency, strict=False)]
            histogram = [x + y for x, y in zip(histogram, diff, strict=False)] or diff
        for _, stop, _ in self._fleets:
            stop.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30.0):
                await asyncio.gather(*(task for _, _, task in self._fleets), return_exceptions=True)
        self._fleets = []
        latency = (
            {
                key: (quantile(histogram, q) or 0.0) * 1e3
                for key, q in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999))
            }
            if any(histogram)
            else {}
        )
        return {
            "answered": {k: v for k, v in answered.items() if v},
            "errors": {k: v for k, v in errors.items() if v},
            "timeouts": {k: v for k, v in timeouts.items() if v},
            "received_calls": {k: v for k, v in received.items() if v},
            "latency_ms": latency,
            "cpu": cpu,
            "wall": wall,
        }

    async def close(self) -> dict[str, Any]:
        """Close every connection.

        Returns:
            {"closed": count}.
        """
        links, self.links = self.links, []
        await asyncio.gather(*(self._close_link(link) for link in links))
        return {"closed": len(links)}

    async def shutdown(self) -> None:
        """Close every connection and the HTTP client."""
        await self.close()
        if self._client is not None:
            await self._client.close()

    async def _run_phase(
        self,
        drive: Any,
        recorder: _Recorder,
        start: float,
        end: float,
        drivers: int | None,
        version: str | None,
    ) -> dict[str, Any]:
        links = [link for link in self.links if version is None or link.version == version]
        if drivers is not None:
            links = links[:drivers]
        tasks = [asyncio.create_task(drive(link)) for link in links]
        delay = start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        cpu0, wall0 = self_cpu(), time.monotonic()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(0.0, end - time.monotonic()) + 10.0)
            for task in late:
                task.cancel()
            recorder.failed += len(late)
            cpu_in_window, wall = self_cpu() - cpu0, time.monotonic() - wall0
        else:
            cpu_in_window, wall = 0.0, 0.0
        return recorder.result(cpu_in_window, wall)


async def _serve(pipe: Connection, local_addr: str | None) -> None:
    worker = Worker(local_addr)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    while True:
        command, arguments = await loop.run_in_executor(None, pipe.recv)
        if command == "exit":
            break
        try:
            result = await getattr(worker, command)(**arguments)
        except Exception as error:  # reported to the parent, which raises
            result = {"error": f"{type(error).__name__}: {error}"}
        pipe.send(result)
    await worker.shutdown()
    pipe.send({"exited": True})


def _process_main(pipe: Connection, local_addr: str | None) -> None:
    raise_nofile_limit()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(_serve(pipe, local_addr))


class LoadGeneratorError(RuntimeError):
    """A load-generator worker failed a command."""


class LoadGenerator:
    """A pool of load-generator processes driven together."""

    def __init__(self, processes: int, local_addrs: Sequence[str | None] = ()) -> None:
        """Args:
        processes: number of worker processes.
        local_addrs: source address per worker (cycled); empty means the kernel's choice.
        """
        self.size = processes
        self.local_addrs = list(local_addrs) or [None]
        self._pipes: list[Connection] = []
        self._processes: list[SpawnProcess] = []

    def start(self) -> None:
        """Start the worker processes."""
        context = multiprocessing.get_context("spawn")
        for index in range(self.size):
            parent, child = context.Pipe()
            address = self.local_addrs[index % len(self.local_addrs)]
            process = context.Process(
                target=_process_main, args=(child, address), name="bench-loadgen", daemon=True
            )
            process.start()
            child.close()
            self._pipes.append(parent)
            self._processes.append(process)

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [process.pid for process in self._processes if process.pid is not None]

    def split(self, items: Sequence[Any]) -> list[list[Any]]:
        """Deal items round-robin over the workers.

        Args:
            items: anything to share out.

        Returns:
            One list per worker.
        """
        return [list(items[index :: self.size]) for index in range(self.size)]

    async def run(self, command: str, per_worker: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send a command to every worker and wait for all answers.

        Args:
            command: a `Worker` method name.
            per_worker: keyword arguments, one mapping per worker.

        Returns:
            The workers' answers, in worker order.

        Raises:
            LoadGeneratorError: a worker reported an error.
        """
        loop = asyncio.get_running_loop()
        for pipe, arguments in zip(self._pipes, per_worker, strict=True):
            pipe.send((command, dict(arguments)))
        answers = await asyncio.gather(
            *(loop.run_in_executor(None, pipe.recv) for pipe in self._pipes)
        )
        for answer in answers:
            if "error" in answer:
                raise LoadGeneratorError(f"{command}: {answer['error']}")
        return list(answers)

    async def all(self, command: str, **arguments: Any) -> list[dict[str, Any]]:
        """Send the same command to every worker.

        Args:
            command: a `Worker` method name.
            **arguments: its keyword arguments.

        Returns:
            The workers' answers.
        """
        return await self.run(command, [arguments] * self.size)

    async def stop(self) -> None:
        """Ask the workers to close everything and exit; kill those that do not."""
        loop = asyncio.get_running_loop()
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            if process.is_alive():
                with contextlib.suppress(OSError):
                    pipe.send(("exit", {}))
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            with contextlib.suppress(EOFError, OSError):
                if await loop.run_in_executor(None, pipe.poll, 15.0):
                    pipe.recv()
            await loop.run_in_executor(None, process.join, 5.0)
            if process.is_alive():
                process.kill()
            pipe.close()
        self._pipes, self._processes = [], []
