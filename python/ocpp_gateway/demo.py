"""`ocpp-gateway demo`: a gateway, a simulated fleet and a live view of both, in one process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.live import Live

from ocpp_gateway.aio import stop as stop_tasks
from ocpp_gateway.dashboard import Dashboard
from ocpp_gateway.simulate import PROFILES, FleetStats, Profile, run_fleet
from ocpp_gateway.simulate.profile import SimVersion

if TYPE_CHECKING:
    from ocpp_gateway.server import RunningGateway

__all__ = ["DemoOptions", "main", "parse_args", "run_demo"]

DEFAULT_PORT = 8180
DEFAULT_ADMIN_PORT = 8181
# The demo listens on 127.0.0.1 by default; a fixed token lets the README's curl lines work.
DEMO_TOKEN = "demo-admin-token"
_VERSIONS: tuple[SimVersion, ...] = ("ocpp1.6", "ocpp2.0.1")


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What `ocpp-gateway demo` runs (see `parse_args` for the flags)."""

    charge_points: int = 50
    duration: float | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    admin_port: int = DEFAULT_ADMIN_PORT
    admin_token: str = DEMO_TOKEN
    upstream: str | None = None
    config: str | None = None
    share_201: float = 0.5
    misbehave: float = 0.1
    interval: float = 0.0  # 0: 1 s for the live view, 5 s for plain lines
    plain: bool = False
    seed: int | None = None
    transport: str = "local"  # local (or --upstream), nats, redis
    observe: bool = False  # validation.default = observe: forward and count violations
    violation_log: str | None = None  # validation.violation_log, for `ocpp-gateway violations`
    candidate: bool = False  # a second, candidate CSMS whose answers are compared
    candidate_store: str | None = None  # its id_map file (default: a temporary one)


def parse_args(argv: Sequence[str]) -> DemoOptions:
    """Parse the demo's command line.

    Args:
        argv: the arguments after `demo`.

    Returns:
        The options.

    Raises:
        SystemExit: on --help or invalid arguments (argparse's behaviour).
    """
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway demo",
        description=(
            "Start a gateway (local responder unless --upstream is given), a simulated fleet of "
            "OCPP 1.6J and 2.0.1 charge points on accelerated timings, and a live view."
        ),
    )
    parser.add_argument("--charge-points", type=int, default=50, metavar="N")
    parser.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="default: until Ctrl-C"
    )
    parser.add_argument("--host", default="127.0.0.1", help="gateway address (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"gateway port ({DEFAULT_PORT}; 0 = any)"
    )
    parser.add_argument(
        "--admin-port",
        type=int,
        default=DEFAULT_ADMIN_PORT,
        help=f"admin listener: metrics, probes, charge point API ({DEFAULT_ADMIN_PORT}; 0 = any)",
    )
    parser.add_argument(
        "--admin-token", default=DEMO_TOKEN, help=f"bearer token of the API ({DEMO_TOKEN})"
    )
    parser.add_argument("--upstream", default=None, metavar="URL", help="relay to this CSMS")
    parser.add_argument("--config", default=None, help="gateway TOML configuration")
    parser.add_argument(
        "--share-201", type=float, default=0.5, metavar="F", help="fraction speaking 2.0.1"
    )
    parser.add_argument(
        "--misbehave",
        type=float,
        default=0.1,
        metavar="F",
        help="fraction of charge points that sometimes send invalid frames (0.1)",
    )
    parser.add_argument(
        "--interval", type=float, default=None, help="seconds between updates (1; plain: 5)"
    )
    parser.add_argument("--plain", action="store_true", help="periodic text lines, no live view")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fleet's choices")
    parser.add_argument(
        "--transport",
        choices=("local", "nats", "redis"),
        default="local",
        help=(
            "backend: the local responder (default), or a broker (nats-server / redis-server "
            "from PATH, started on a free loopback port) with the example backend service"
        ),
    )
    parser.add_argument(
        "--observe",
        action="store_true",
        help="observe mode: forward and count payload violations instead of refusing them",
    )
    parser.add_argument(
        "--violation-log",
        metavar="FILE",
        help="keep the rollout log of violations there (read it with `ocpp-gateway violations`)",
    )
    parser.add_argument(
        "--candidate",
        action="store_true",
        help=(
            f"add a candidate backend ({CANDIDATE}: a second CSMS in this process that does not "
            "know the cards of every third charge point): its answers are compared with the "
            "primary's and the disagreements reported"
        ),
    )
    parser.add_argument(
        "--candidate-store",
        metavar="FILE",
        help="keep the candidate's id map and report there (read it with "
        "`ocpp-gateway candidate-report FILE`; default: a temporary file)",
    )
    args = parser.parse_args(list(argv))
    if args.candidate_store and not args.candidate:
        parser.error("--candidate-store needs --candidate")
    if args.transport != "local" and args.upstream:
        parser.error("--transport and --upstream exclude each other")
    if args.charge_points < 1:
        parser.error("--charge-points must be at least 1")
    if not 0.0 <= args.share_201 <= 1.0 or not 0.0 <= args.misbehave <= 1.0:
        parser.error("--share-201 and --misbehave must be within [0, 1]")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    return DemoOptions(
        charge_points=args.charge_points,
        duration=args.duration,
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        admin_token=args.admin_token,
        upstream=args.upstream,
        config=args.config,
        share_201=args.share_201,
        misbehave=args.misbehave,
        interval=args.interval if args.interval and args.interval > 0 else 0.0,
        plain=args.plain,
        seed=args.seed,
        transport=args.transport,
        observe=args.observe,
        violation_log=args.violation_log,
        candidate=args.candidate,
        candidate_store=args.candidate_store,
    )


def _fleet_plan(options: DemoOptions) -> dict[SimVersion, list[str]]:
    n_201 = round(options.charge_points * options.share_201)
    n_16 = options.charge_points - n_201
    return {
        "ocpp1.6": [f"DEMO16-{i:04d}" for i in range(1, n_16 + 1)],
        "ocpp2.0.1": [f"DEMO201-{i:04d}" for i in range(1, n_201 + 1)],
    }


async def run_demo(
    options: DemoOptions, out: TextIO | None = None, stop: asyncio.Event | None = None
) -> int:
    """Run the demo until `options.duration` elapses, SIGINT/SIGTERM arrives or `stop` is set.

    Args:
        options: what to run.
        out: where to write (default stdout); a live view when it is a terminal and
            `options.plain` is False, else a line every interval and a final summary.
        stop: an event that ends the demo when set (for embedding and tests).

    Returns:
        0 on success, 1 when the gateway could not start.
    """
    from ocpp_gateway.config import load_config
    from ocpp_gateway.errors import GatewayError
    from ocpp_gateway.server import start_gateway

    stream = out if out is not None else sys.stdout
    async with contextlib.AsyncExitStack() as resources:
        overrides: dict[str, object] = {
            "host": options.host,
            "port": options.port,
            "upstream.url": options.upstream,
            "validation.default": "observe" if options.observe else None,
            "validation.violation_log": options.violation_log,
            "admin.host": options.host,
            "admin.port": options.admin_port,
            "admin.token": options.admin_token,
        }
        backend: _BrokerBackend | None = None
        if options.transport != "local":
            try:
                backend = await resources.enter_async_context(_broker_backend(options.transport))
            except (OSError, GatewayError, RuntimeError) as exc:
                print(f"ocpp-gateway demo: cannot start the broker: {exc}", file=sys.stderr)
                return 1
            overrides.update(backend.overrides)
        candidate: _Candidate | None = None
        if options.candidate:
            candidate = await resources.enter_async_context(
                _candidate_csms(options.candidate_store)
            )
            overrides["backends"] = candidate.backends(primary=overrides.get("upstream.url"))
        try:
            config = load_config(options.config, None, overrides)
            gateway = await start_gateway(config)
        except (OSError, GatewayError) as exc:
            print(f"ocpp-gateway demo: cannot start the gateway: {exc}", file=sys.stderr)
            if isinstance(exc, OSError):
                print("(is the port in use? try --port 0 --admin-port 0)", file=sys.stderr)
            return 1
        return await _run(options, stream, stop, gateway, backend, candidate)


def _backend_line(options: DemoOptions, backend: _BrokerBackend | None) -> str:
    """What the demo's primary backend is, in words."""
    if backend is not None:
        return backend.describe()
    if options.upstream:
        return f"the CSMS at {options.upstream}/{{charge_point_id}}"
    return "the embedded local responder"


async def _run(
    options: DemoOptions,
    stream: TextIO,
    stop: asyncio.Event | None,
    gateway: RunningGateway,
    backend: _BrokerBackend | None,
    candidate: _Candidate | None = None,
) -> int:

    plan = _fleet_plan(options)
    target: dict[str, int] = {v: len(ids) for v, ids in plan.items()}
    stats: dict[str, FleetStats] = {v: FleetStats() for v in _VERSIONS}
    stop = stop if stop is not None else asyncio.Event()
    ramp = min(5.0, options.charge_points / 200.0)
    tasks = []
    for version in _VERSIONS:
        if not plan[version]:
            continue
        profile: Profile = dataclasses.replace(
            PROFILES[f"demo-{version.removeprefix('ocpp')}"], misbehave_fraction=options.misbehave
        )
        tasks.append(
            asyncio.create_task(
                run_fleet(
                    f"{gateway.url}/ocpp",
                    plan[version],
                    profile,
                    stats=stats[version],
                    stop=stop,
                    ramp_seconds=ramp,
                    seed=options.seed,
                )
            )
        )

    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            signals.append(sig)

    metrics_url = f"{gateway.admin_url}/metrics"
    backend_line = _backend_line(options, backend)
    api_line = f"{gateway.admin_url}/charge-points (Authorization: Bearer {options.admin_token})"
    # The token goes in the URL's fragment, which the browser keeps to itself.
    console_url = f"{gateway.admin_url}/console/#token={options.admin_token}"
    dashboard = Dashboard(
        gateway.url,
        metrics_url,
        target,
        gateway.metrics,
        backend_line,
        api_line,
        console_url,
        candidate=None if candidate is None else candidate.describe(gateway.admin_url),
    )
    live_view = stream.isatty() and not options.plain
    interval = options.interval or (1.0 if live_view else 5.0)
    deadline = None if options.duration is None else loop.time() + options.duration
    if not live_view:
        print(
            f"ocpp-gateway demo: {options.charge_points} charge points -> {gateway.url}/ocpp/"
            f"{{id}}; backend: {backend_line}; metrics at {metrics_url}; charge point API at "
            f"{api_line}; web console at {console_url}"
            + (f"; candidate: {dashboard.candidate}" if dashboard.candidate else ""),
            file=stream,
            flush=True,
        )

    async def tick() -> bool:
        """Wait one interval; False once the demo should stop."""
        wait = interval if deadline is None else min(interval, deadline - loop.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(wait, 0.0))
        if deadline is not None and loop.time() >= deadline:
            stop.set()
        return not stop.is_set()

    try:
        if live_view:
            console = Console(file=stream)
            with Live(
                dashboard.render(dashboard.view(stats)),
                console=console,
                auto_refresh=False,
                transient=False,
            ) as live:
                while await tick():
                    live.update(dashboard.render(dashboard.view(stats)), refresh=True)
                live.update(dashboard.render(dashboard.view(stats)), refresh=True)
        else:
            while await tick():
                print(dashboard.line(dashboard.view(stats)), file=stream, flush=True)
    finally:
        stop.set()
        for sig in signals:
            loop.remove_signal_handler(sig)
        await asyncio.gather(*tasks, return_exceptions=True)
        await gateway.stop(drain_timeout=1.0)
    if not live_view:
        print(dashboard.summary(dashboard.view(stats)), file=stream, flush=True)
    if backend is not None:
        print(backend.summary(), file=stream, flush=True)
    if candidate is not None:
        print(candidate.summary(), file=stream, flush=True)
    return 0


#: The demo's candidate backend.
CANDIDATE = "next-csms"


def _cards_unknown(charge_point_id: str) -> bool:
    """The demo candidate's card list lacks the cards of every third charge point."""
    digits = charge_point_id[-4:]
    return digits.isdigit() and int(digits) % 3 == 0


@dataclass
class _Candidate:
    """The demo's candidate CSMS, served in this process, and its store."""

    url: str
    store: str

    def backends(self, primary: object) -> dict[str, object]:
        """The `[backends]` table that adds it beside the primary (`upstream.url`, else the
        local responder, named "local")."""
        table: dict[str, object] = {
            CANDIDATE: {"role": "candidate", "url": self.url, "id_map": self.store}
        }
        if not primary:
            table["local"] = {"role": "primary", "type": "local"}
        return table

    def describe(self, admin_url: str | None) -> str:
        return (
            f"{CANDIDATE} at {self.url} (its card list lacks every third charge point's); "
            f"report: GET {admin_url}/candidates or `ocpp-gateway candidate-report {self.store}`"
        )

    def summary(self) -> str:
        from ocpp_gateway.fanout.report import format_report
        from ocpp_gateway.fanout.store import read_report

        return format_report(CANDIDATE, read_report(self.store))


@contextlib.asynccontextmanager
async def _candidate_csms(store: str | None) -> AsyncIterator[_Candidate]:
    """A candidate CSMS on a free loopback port: the local responder's answers over
    WebSocket, except that the cards of every third charge point are "Invalid" (a new CSMS
    whose card list is not migrated yet). Its store is `store`, or a temporary file."""
    import tempfile

    import orjson
    from aiohttp import WSMsgType, web

    from ocpp_gateway.schemas import VERSIONS
    from ocpp_gateway.transports.local import LocalTransport

    responder = LocalTransport(CANDIDATE)

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=tuple(reversed(VERSIONS)))
        await ws.prepare(request)
        version = ws.ws_protocol or "ocpp1.6"
        unknown = _cards_unknown(request.path.rsplit("/", 1)[-1])
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            call = orjson.loads(message.data)
            if not isinstance(call, list) or len(call) < 4 or call[0] != 2:
                continue  # the gateway sends only valid CALLs; answers to nothing are ignored
            answer = responder.answer(version, call[2], call[3])
            if answer is None:
                await ws.send_bytes(orjson.dumps([4, call[1], "NotImplemented", "", {}]))
                continue
            for key in ("idTagInfo", "idTokenInfo"):
                if unknown and isinstance(answer.get(key), dict):
                    answer[key] = {**answer[key], "status": "Invalid"}
            await ws.send_str(orjson.dumps([3, call[1], answer]).decode())
        return ws

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        with tempfile.TemporaryDirectory(prefix="ocpp-gateway-demo-") as scratch:
            path = store or f"{scratch}/{CANDIDATE}.sqlite"
            yield _Candidate(f"ws://127.0.0.1:{port}/ocpp", path)
    finally:
        await runner.cleanup()


@dataclass
class _BrokerBackend:
    """A broker server started for the demo and the example backend service consuming it."""

    kind: str
    url: str
    journal: str
    overrides: dict[str, object]

    def describe(self) -> str:
        return (
            f"{self.kind} at {self.url}, consumed by the example backend service "
            f"(ocpp_gateway.backend.example, journal {self.journal})"
        )

    def summary(self) -> str:
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.journal)) as db:
            rows = db.execute("SELECT action, COUNT(*) FROM journal GROUP BY action").fetchall()
        counts = ", ".join(f"{action} {count}" for action, count in sorted(rows)) or "none"
        return f"backend journal ({self.journal}): {counts}"


@contextlib.asynccontextmanager
async def _broker_backend(transport: str) -> AsyncIterator[_BrokerBackend]:
    """Start nats-server or redis-server on a free loopback port (data in a temporary
    directory) and the example backend service in this process; stop both afterwards."""
    from ocpp_gateway.bench.procs import BrokerServer
    from ocpp_gateway.transports import transport_types

    kind = "nats" if transport == "nats" else "redis_streams"
    transport_type = transport_types()[kind]
    try:
        transport_type.options()  # imports the client library
    except ImportError as exc:
        raise RuntimeError(
            f"the {transport} demo needs the {transport_type.extra!r} extra ({exc.name} is "
            f"missing): {transport_type.install_hint()}"
        ) from exc
    from ocpp_gateway.backend.example import TransactionJournal, build_app

    runner: asyncio.Task[None] | None = None
    async with BrokerServer(kind) as server:  # OSError: not installed, or did not start
        url = server.url
        try:
            if transport == "nats":
                from ocpp_gateway.backend.nats import NatsBroker

                broker: Any = NatsBroker(url)
            else:
                from ocpp_gateway.backend.redis import RedisBroker

                broker = RedisBroker(url)
            journal = f"{server.store}/journal.sqlite"
            app = build_app(broker, TransactionJournal(journal))
            await app.start()
            runner = asyncio.create_task(app.run())
            yield _BrokerBackend(
                transport, url, journal, {"upstream.type": kind, "upstream.url": url}
            )
        finally:
            if runner is not None:
                await stop_tasks([runner])
                await app.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ocpp-gateway demo`.

    Args:
        argv: the arguments after `demo` (default: sys.argv[1:]).

    Returns:
        The process exit status.
    """
    options = parse_args(sys.argv[1:] if argv is None else argv)
    # The view shows what the gateway does; its log lines (the misbehaving chargers' rejected
    # frames, connects) would scroll through it. Errors still reach stderr.
    logging.getLogger("ocpp_gateway").setLevel(logging.ERROR)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        return runner(run_demo(options))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
