"""`ocpp-gateway demo`: a gateway, a simulated fleet and a live view of both, in one process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ocpp_gateway.aio import stop as stop_tasks
from ocpp_gateway.simulate import PROFILES, FleetSnapshot, FleetStats, Profile, run_fleet
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
    args = parser.parse_args(list(argv))
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
    )


def _fleet_plan(options: DemoOptions) -> dict[SimVersion, list[str]]:
    n_201 = round(options.charge_points * options.share_201)
    n_16 = options.charge_points - n_201
    return {
        "ocpp1.6": [f"DEMO16-{i:04d}" for i in range(1, n_16 + 1)],
        "ocpp2.0.1": [f"DEMO201-{i:04d}" for i in range(1, n_201 + 1)],
    }


def _labelled_sums(collector: object, label: str) -> dict[str, float]:
    """Sum the `_total` samples of a prometheus_client counter by one label."""
    sums: dict[str, float] = {}
    collect = getattr(collector, "collect", None)
    if collect is None:
        return sums
    for metric in collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                key = sample.labels.get(label, "")
                sums[key] = sums.get(key, 0.0) + sample.value
    return sums


@dataclass(frozen=True, slots=True)
class _View:
    """Everything one refresh shows, computed from two snapshots."""

    uptime: float
    target: dict[str, int]
    now: dict[str, FleetSnapshot]
    rates: dict[str, float]
    totals: dict[str, int]
    answered: dict[str, int]
    errors: dict[str, int]
    latency: dict[str, tuple[float | None, float | None]]
    p50: float | None
    p99: float | None
    rejected: dict[str, float]
    gateway_messages: float


def _merge(snapshots: Sequence[FleetSnapshot]) -> FleetSnapshot:
    def add(maps: Sequence[dict[str, int]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in maps:
            for k, v in m.items():
                out[k] = out.get(k, 0) + v
        return out

    latency = [sum(col) for col in zip(*(s.latency for s in snapshots), strict=True)]
    by_action: dict[str, list[int]] = {}
    for s in snapshots:
        for action, hist in s.latency_by_action.items():
            if action in by_action:
                by_action[action] = [a + b for a, b in zip(by_action[action], hist, strict=True)]
            else:
                by_action[action] = list(hist)
    return FleetSnapshot(
        at=max(s.at for s in snapshots),
        connected=sum(s.connected for s in snapshots),
        booted=sum(s.booted for s in snapshots),
        connects=sum(s.connects for s in snapshots),
        disconnects=sum(s.disconnects for s in snapshots),
        connect_failures=sum(s.connect_failures for s in snapshots),
        handshake_failures=add([s.handshake_failures for s in snapshots]),
        sent=add([s.sent for s in snapshots]),
        answered=add([s.answered for s in snapshots]),
        errors=add([s.errors for s in snapshots]),
        error_codes=add([s.error_codes for s in snapshots]),
        timeouts=add([s.timeouts for s in snapshots]),
        received_calls=add([s.received_calls for s in snapshots]),
        invalid_sent=sum(s.invalid_sent for s in snapshots),
        unmatched=sum(s.unmatched for s in snapshots),
        internal_errors=sum(s.internal_errors for s in snapshots),
        latency=latency,
        latency_by_action=by_action,
    )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


class _Dashboard:
    """Turns fleet and gateway counters into a rich renderable or a plain line."""

    def __init__(
        self,
        url: str,
        metrics_url: str,
        target: dict[str, int],
        metrics: object,
        backend: str = "",
        api: str = "",
        console_url: str | None = None,
    ):
        self.url = url
        self.metrics_url = metrics_url
        self.backend = backend
        self.api = api
        self.console_url = console_url
        self.target = target
        self._metrics = metrics
        self._started = time.monotonic()
        self._previous: FleetSnapshot | None = None

    def view(self, stats: dict[str, FleetStats]) -> _View:
        now = time.monotonic()
        per_version = {v: s.snapshot(now) for v, s in stats.items()}
        total = _merge(list(per_version.values()))
        prev = self._previous
        elapsed = now - (prev.at if prev is not None else self._started)
        rates = {
            action: (count - prev.sent.get(action, 0)) / max(elapsed, 1e-9) if prev else 0.0
            for action, count in total.sent.items()
        }
        self._previous = total
        latency = {
            action: (total.latency_quantile(0.5, action), total.latency_quantile(0.99, action))
            for action in total.sent
        }
        gateway_metrics = self._metrics
        flush = getattr(gateway_metrics, "flush", None)  # hot-path counts are buffered
        if flush is not None:
            flush()
        rejected = _labelled_sums(getattr(gateway_metrics, "rejected", None), "error_code")
        messages = _labelled_sums(getattr(gateway_metrics, "messages", None), "direction")
        return _View(
            uptime=now - self._started,
            target=self.target,
            now=per_version,
            rates=rates,
            totals=total.sent,
            answered=total.answered,
            errors=total.errors,
            latency=latency,
            p50=total.latency_quantile(0.5),
            p99=total.latency_quantile(0.99),
            rejected={k: v for k, v in rejected.items() if v},
            gateway_messages=sum(messages.values()),
        )

    def render(self, view: _View) -> Panel:
        """The live view: header, messages by action, rejections by code."""
        connected = sum(s.connected for s in view.now.values())
        booted = sum(s.booted for s in view.now.values())
        header = Text()
        header.append("gateway  ", style="bold")
        header.append(f"{self.url}/ocpp/{{charge_point_id}}\n")
        if self.backend:
            header.append("backend  ", style="bold")
            header.append(f"{self.backend}\n")
        header.append("metrics  ", style="bold")
        header.append(f"{self.metrics_url}\n")
        if self.api:
            header.append("API      ", style="bold")
            header.append(f"{self.api}\n")
        if self.console_url:
            header.append("console  ", style="bold")
            header.append(f"{self.console_url}\n")
        header.append("fleet    ", style="bold")
        header.append(f"{connected}/{sum(self.target.values())} connected, {booted} booted  (")
        header.append(
            ", ".join(
                f"{v}: {s.connected}/{self.target[v]}"
                for v, s in view.now.items()
                if self.target[v]
            )
        )
        header.append(")\n")
        header.append("latency  ", style="bold")
        header.append(f"p50 {_ms(view.p50)} ms   p99 {_ms(view.p99)} ms   (CALL round trip)\n")
        header.append("uptime   ", style="bold")
        header.append(f"{view.uptime:.0f} s   frames through the gateway: ")
        header.append(f"{view.gateway_messages:.0f}")

        actions = Table(title="CALLs from charge points", expand=True)
        actions.add_column("action", no_wrap=True, min_width=18)
        for col in ("per s", "sent", "answered", "CALLERROR", "p50 ms", "p99 ms"):
            actions.add_column(col, justify="right")
        for action in sorted(view.totals, key=lambda a: -view.totals[a]):
            p50, p99 = view.latency[action]
            actions.add_row(
                action,
                f"{view.rates.get(action, 0.0):.1f}",
                str(view.totals[action]),
                str(view.answered.get(action, 0)),
                str(view.errors.get(action, 0)),
                _ms(p50),
                _ms(p99),
            )
        actions.add_row(
            Text("total", style="bold"),
            f"{sum(view.rates.values()):.1f}",
            str(sum(view.totals.values())),
            str(sum(view.answered.values())),
            str(sum(view.errors.values())),
            _ms(view.p50),
            _ms(view.p99),
        )

        rejected = Table(title="Rejected by the gateway")
        rejected.add_column("error code")
        rejected.add_column("frames", justify="right")
        for code, count in sorted(view.rejected.items(), key=lambda kv: -kv[1]):
            rejected.add_row(code, f"{count:.0f}")
        if not view.rejected:
            rejected.add_row(Text("none yet", style="dim"), "")
        invalid = sum(s.invalid_sent for s in view.now.values())
        note = Text(
            f"misbehaving charge points sent {invalid} invalid frames "
            "(over-long model names, unknown statuses); Ctrl-C stops the demo.",
            style="dim",
        )
        return Panel(Group(header, actions, rejected, note), title="ocpp-gateway demo")

    def line(self, view: _View) -> str:
        """One plain summary line, for logs and pipes."""
        connected = sum(s.connected for s in view.now.values())
        booted = sum(s.booted for s in view.now.values())
        rejected = sum(view.rejected.values())
        codes = ", ".join(f"{k} {v:.0f}" for k, v in sorted(view.rejected.items()))
        return (
            f"[{view.uptime:6.0f}s] connected {connected}/{sum(self.target.values())} "
            f"booted {booted} | {sum(view.rates.values()):.1f} calls/s, "
            f"{sum(view.totals.values())} sent, {sum(view.answered.values())} answered | "
            f"rejected {rejected:.0f}{f' ({codes})' if codes else ''} | "
            f"rtt p50 {_ms(view.p50)} ms p99 {_ms(view.p99)} ms"
        )

    def summary(self, view: _View) -> str:
        """A plain multi-line summary of the whole run."""
        lines = [self.line(view), f"metrics were at {self.metrics_url}"]
        for action in sorted(view.totals, key=lambda a: -view.totals[a]):
            p50, p99 = view.latency[action]
            lines.append(
                f"  {action:<28} sent {view.totals[action]:>7}  answered "
                f"{view.answered.get(action, 0):>7}  CALLERROR {view.errors.get(action, 0):>5}  "
                f"p50 {_ms(p50):>6} ms  p99 {_ms(p99):>6} ms"
            )
        return "\n".join(lines)


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
        try:
            config = load_config(options.config, None, overrides)
            gateway = await start_gateway(config)
        except (OSError, GatewayError) as exc:
            print(f"ocpp-gateway demo: cannot start the gateway: {exc}", file=sys.stderr)
            if isinstance(exc, OSError):
                print("(is the port in use? try --port 0 --admin-port 0)", file=sys.stderr)
            return 1
        return await _run(options, stream, stop, gateway, backend)


async def _run(
    options: DemoOptions,
    stream: TextIO,
    stop: asyncio.Event | None,
    gateway: RunningGateway,
    backend: _BrokerBackend | None,
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
    if backend is not None:
        backend_line = backend.describe()
    elif options.upstream:
        backend_line = f"the CSMS at {options.upstream}/{{charge_point_id}}"
    else:
        backend_line = "the embedded local responder"
    api_line = f"{gateway.admin_url}/charge-points (Authorization: Bearer {options.admin_token})"
    # The token goes in the URL's fragment, which the browser keeps to itself.
    console_url = f"{gateway.admin_url}/console/#token={options.admin_token}"
    dashboard = _Dashboard(
        gateway.url, metrics_url, target, gateway.metrics, backend_line, api_line, console_url
    )
    live_view = stream.isatty() and not options.plain
    interval = options.interval or (1.0 if live_view else 5.0)
    deadline = None if options.duration is None else loop.time() + options.duration
    if not live_view:
        print(
            f"ocpp-gateway demo: {options.charge_points} charge points -> {gateway.url}/ocpp/"
            f"{{id}}; backend: {backend_line}; metrics at {metrics_url}; charge point API at "
            f"{api_line}; web console at {console_url}",
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
    return 0


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
