"""`ocpp-gateway bench tls`: what TLS costs the gateway, beside plain ws and nginx in front.

(Over 600 lines on purpose: one run's setups, phases and report, read top to bottom in the order
the run takes them; no other module uses its parts.)

In one run: plain ws://, TLS in the gateway, and nginx terminating TLS in front of it (PROXY
protocol).

Setups, each the gateway relaying to the test CSMS (one worker, frame rate limit lifted), all
with HTTP Basic auth so that TLS is the only difference:

- `ws`: plain ws:// (security profile 1), the baseline;
- `wss_ec`, `wss_rsa`: TLS in the gateway with an EC P-256 or an RSA-2048 certificate
  (profile 2);
- `mtls_ec`: profile 3, every charge point with its own client certificate (CN = its id);
- `nginx_ec`: Debian's nginx (stream module) terminating TLS with the EC certificate and
  passing each connection to a plain gateway with a PROXY protocol header; its CPU and memory
  are the sum of nginx's processes and the gateway's.

Measured per setup: memory per idle booted charge point (RSS), CPU per CALL round trip (closed
loop, repetitions interleaved across setups), CPU per full and per resumed TLS handshake (a
client connecting, asking `/healthz`, closing; resumed with the session ticket of the previous
connection), and a reconnect storm (every idle charge point dropped and reconnecting at once).
The report (`tls.json`) feeds `ocpp-gateway bench plan --tls SETUP --tls-from tls.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocpp_gateway.bench.loadgen import LoadGenerator
from ocpp_gateway.bench.procs import ProcessGroup, Usage, free_port, usage, wait_tcp_open
from ocpp_gateway.bench.ramp import fleet_ids
from ocpp_gateway.bench.targets import CsmsPool

__all__ = [
    "PHASES",
    "SETUPS",
    "Setup",
    "closed_loop",
    "flood",
    "flood_phase",
    "flood_table",
    "handshake_phase",
    "handshakes",
    "idle_and_storm",
    "main",
    "measure",
    "nginx_available",
    "nginx_config",
    "start_setup",
    "summarize",
    "table",
]

SETUPS = ("ws", "wss_ec", "wss_rsa", "mtls_ec", "nginx_ec")

NGINX_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
"""Debian's stream module (package libnginx-mod-stream): TLS termination + PROXY protocol."""


@dataclass
class Setup:
    """One running setup: the gateway and, for nginx_ec, nginx in front of it."""

    name: str
    url: str
    port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    client_cert: tuple[str, str] | None = None

    def usage(self) -> Usage:
        """Summed CPU and RSS of every process of the setup (workers included)."""
        pids = [pid for p in self.processes for pid in ProcessGroup(p.pid, self.name).pids()]
        return usage(pids)

    def stop(self) -> None:
        """SIGTERM every process, SIGKILL after 10 s."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def nginx_config(
    folder: Path, listen: int, upstream: int, cert: Path, key: Path, workers: int = 1
) -> Path:
    """Write an nginx configuration terminating TLS on `listen`, PROXY protocol to `upstream`.

    Args:
        folder: where the configuration, pid and log files go.
        listen: nginx's TLS port on 127.0.0.1.
        upstream: the plain gateway's port on 127.0.0.1.
        cert, key: the server certificate and key.
        workers: nginx worker processes.

    Returns:
        The configuration file.
    """
    text = f"""load_module {NGINX_MODULE};
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 20000;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 19000; }}
stream {{
    server {{
        listen 127.0.0.1:{listen} ssl backlog=1024;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        proxy_pass 127.0.0.1:{upstream};
        proxy_protocol on;
        proxy_timeout 1h;
    }}
}}
"""
    path = folder / "nginx.conf"
    path.write_text(text)
    return path


def nginx_available() -> bool:
    """True when nginx and its stream module are installed."""
    return shutil.which("nginx") is not None and Path(NGINX_MODULE).exists()


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as sink:
        return subprocess.Popen(
            command, stdout=sink, stderr=sink, env={**os.environ, **env}, start_new_session=True
        )


def _toml_path(path: Path) -> str:
    return json.dumps(str(path))


async def start_setup(
    name: str,
    csms: CsmsPool,
    out: Path,
    pki: Any,
    credentials: Path,
    before: Path | None = None,
    gated: bool = False,
    workers: int = 1,
) -> Setup:
    """Start one setup and wait until it listens.

    Args:
        name: one of `SETUPS`.
        csms: the test CSMS the gateway relays to.
        out: directory of logs and configuration files.
        pki: a `ocpp_gateway.bench.pki.BenchPki`.
        credentials: the credentials file (Basic auth).
        before: the source tree (`DIR/python`, extension built or copied in) of setups named
            with a `_before` suffix, e.g. `wss_ec_before`: a change measured before and after.
        gated: keep the handshake gate's default per-address limits (the flood phase).
        workers: gateway worker processes (`--workers`; they share TLS ticket keys), and nginx
            worker processes: a process holds at most ~9,900 relayed charge points (open files).

    Returns:
        The running setup.
    """
    env = {"OCPP_GATEWAY_LOG_LEVEL": os.environ.get("OCPP_GATEWAY_LOG_LEVEL", "warning")}
    if name.endswith("_before"):
        if before is None:
            raise SystemExit(f"{name}: pass --before DIR")
        env["PYTHONPATH"] = str(before / "python")
    kind = name.removesuffix("_before")
    port = free_port()
    lines = ["[security]", "message_rate = 0", f"credentials_file = {_toml_path(credentials)}"]
    if not gated:
        # The load generator is one address: the handshake gate's per-address limits would
        # refuse its fleet. The gate stays in the path (its total in-flight limit is kept).
        lines += ["tls_handshake_rate_per_ip = 0", "tls_handshakes_in_flight_per_ip = 0"]
    if kind in ("wss_ec", "mtls_ec"):
        lines += [f"tls_cert = {_toml_path(pki.ec_cert)}", f"tls_key = {_toml_path(pki.ec_key)}"]
    if kind == "wss_rsa":
        lines += [f"tls_cert = {_toml_path(pki.rsa_cert)}", f"tls_key = {_toml_path(pki.rsa_key)}"]
    if kind == "mtls_ec":
        lines.append(f"client_ca = {_toml_path(pki.ca_cert)}")
    header = ['trusted_proxies = ["127.0.0.1/32"]', "proxy_protocol = true"]
    config = out / f"{name}{'-gated' if gated else ''}.toml"
    config.write_text("\n".join((header if kind == "nginx_ec" else []) + lines) + "\n")
    log = out / f"{name}.log"
    command = [sys.executable, "-m", "ocpp_gateway.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--upstream", csms.url(0), "--config", str(config)]
    command += ["--workers", str(workers)]
    gateway = _spawn(command, env, log)
    setup = Setup(name, "", port, [gateway])
    try:
        await wait_tcp_open("127.0.0.1", port, 60.0, lambda: gateway.poll() is None)
        if kind == "nginx_ec":
            front = free_port()
            folder = out / "nginx"
            folder.mkdir(exist_ok=True)
            conf = nginx_config(folder, front, port, pki.ec_cert, pki.ec_key, workers)
            nginx = _spawn(["nginx", "-p", str(folder), "-c", str(conf)], {}, log)
            setup.processes.append(nginx)
            await wait_tcp_open("127.0.0.1", front, 30.0, lambda: nginx.poll() is None)
            setup.port = front
        if kind == "mtls_ec":
            cert, key = pki.client("bench-handshake")
            setup.client_cert = (str(cert), str(key))
    except BaseException:
        setup.stop()
        raise
    scheme = "ws" if kind == "ws" else "wss"
    setup.url = f"{scheme}://localhost:{setup.port}/ocpp"
    return setup


def handshakes(
    port: int, count: int, *, tls: ssl.SSLContext | None, resume: bool
) -> dict[str, int]:
    """Open `count` connections one after another, each asking `/healthz` and closing.

    Blocking: run it in a thread. With `resume`, each TLS connection offers the session
    (ticket) of the previous one.

    Args:
        port: the setup's port on 127.0.0.1.
        count: connections.
        tls: the client context (None: plain TCP).
        resume: offer the previous session.

    Returns:
        {"connections", "resumed" (handshakes the server resumed), "ok" (200 answers)}.
    """
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    session: ssl.SSLSession | None = None
    resumed = ok = 0
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=10.0) as raw:
            # Without it, the client's request waits behind its own Finished for a delayed
            # ACK (40 ms) after a resumed TLS 1.2 handshake, and the server's idle CPU of that
            # wait would be counted per connection.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock: socket.socket = raw
            if tls is not None:
                sock = tls.wrap_socket(
                    raw, server_hostname="localhost", session=session if resume else None
                )
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            ok += answer.startswith(b"HTTP/1.1 200")
            if isinstance(sock, ssl.SSLSocket):
                resumed += bool(sock.session_reused)
                session = sock.session
                sock.close()
    return {"connections": count, "resumed": resumed, "ok": ok}


def _client_context(pki: Any, cert: tuple[str, str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


async def handshake_phase(
    setup: Setup, pki: Any, count: int, resume: bool, version: ssl.TLSVersion
) -> dict[str, Any]:
    """CPU of the setup per connection (handshake + one small HTTP request).

    Args:
        setup: the running setup.
        pki: the bench PKI.
        count: connections.
        resume: resumed TLS handshakes instead of full ones.
        version: the TLS version the client offers (alone).

    Returns:
        {"connections", "resumed", "ok", "cpu_us_per_connection"}.
    """
    tls = (
        None
        if setup.name.removesuffix("_before") == "ws"
        else _client_context(pki, setup.client_cert)
    )
    before = setup.usage()
    result: dict[str, Any] = await asyncio.to_thread(
        handshakes, setup.port, count, tls=tls, resume=resume
    )
    after = setup.usage()
    result["cpu_us_per_connection"] = (after.cpu - before.cpu) * 1e6 / max(1, count)
    return result


async def closed_loop(
    loadgen: LoadGenerator, setup: Setup, seconds: float, warmup: float
) -> dict[str, Any]:
    """CPU per round trip of 100 (or the connected number of) connections in closed loop."""
    start_at = time.monotonic() + warmup + 0.05
    end_at = start_at + seconds
    task = asyncio.create_task(loadgen.all("closed_loop", start=start_at, end=end_at, drivers=None))
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    before = setup.usage()
    await asyncio.sleep(max(0.0, end_at - time.monotonic()))
    after = setup.usage()
    answers = await task
    calls = sum(sum(a["by_action"].values()) for a in answers)
    errors = sum(sum(a["errors"].values()) for a in answers)
    latencies = sorted(x for a in answers for x in a["latencies"])
    return {
        "calls": calls,
        "rate": calls / seconds,
        "errors": errors,
        "cpu_us_per_rt": (after.cpu - before.cpu) * 1e6 / calls if calls else float("nan"),
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
    }


def _flood(port: int, source: str, tls: ssl.SSLContext, stop: Any, out: dict[str, int]) -> None:
    """Open TLS connections from `source` back to back until `stop` is set (blocking)."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), 5.0, (source, 0)) as raw:
                tls.wrap_socket(raw, server_hostname="localhost").close()
            out["completed"] = out.get("completed", 0) + 1
        except (OSError, ssl.SSLError):
            out["refused"] = out.get("refused", 0) + 1


async def _refusals(setup: Setup, pki: Any) -> dict[str, float]:
    """The gateway's handshake refusals by reason, read from its /metrics."""
    context = _client_context(pki, setup.client_cert)

    def fetch() -> str:
        with (
            socket.create_connection(("127.0.0.1", setup.port), 10.0, ("127.0.0.4", 0)) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data.decode(errors="replace")

    found: dict[str, float] = {}
    for line in (await asyncio.to_thread(fetch)).splitlines():
        if line.startswith("ocpp_gateway_handshakes_refused_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = float(line.rsplit(" ", 1)[1])
    return found


async def flood_phase(
    loadgen: LoadGenerator, setup: Setup, pki: Any, seconds: float, rate: float, loris: int
) -> dict[str, Any]:
    """Round-trip latency of established charge points, quiet and then under a handshake flood.

    100 booted charge points send `rate` CALLs per second in all (open loop); then two threads
    open TLS connections from 127.0.0.2 back to back while `loris` sockets from 127.0.0.3 stop
    in the middle of their ClientHello, and the same load is measured again.

    Returns:
        {"quiet", "flood": {"p50_ms", "p99_ms", "calls", "failed"}, "flood_handshakes",
        "refused" (reason -> count, from the gateway's metrics)}.
    """
    fleet = fleet_ids("flood", 100, 0.3)
    await loadgen.all("connect", fleet=[(setup.url, *cp) for cp in fleet])

    async def paced() -> dict[str, Any]:
        start = time.monotonic() + 0.5
        task = asyncio.create_task(
            loadgen.all("paced", start=start, end=start + seconds, rate=rate)
        )
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        before = setup.usage()
        await asyncio.sleep(max(0.0, start + seconds - time.monotonic()))
        cpu = setup.usage().cpu - before.cpu
        answers = await task
        latencies = sorted(x for a in answers for x in a["latencies"])

        def at(q: float) -> float:
            return float(latencies[min(len(latencies) - 1, int(q * len(latencies)))]) * 1000

        return {
            "calls": len(latencies),
            "failed": sum(a["failed"] for a in answers),
            "p50_ms": at(0.5) if latencies else float("nan"),
            "p99_ms": at(0.99) if latencies else float("nan"),
            "gateway_cpu_share": cpu / seconds,
        }

    result: dict[str, Any] = {"quiet": await paced()}
    stop = threading.Event()
    outcome: dict[str, int] = {}
    tls = _client_context(pki, setup.client_cert)
    threads = [
        threading.Thread(target=_flood, args=(setup.port, "127.0.0.2", tls, stop, outcome))
        for _ in range(2)
    ]
    sockets: list[socket.socket] = []
    try:
        for _ in range(loris):
            sock = socket.socket()
            sock.bind(("127.0.0.3", 0))
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", setup.port))
            sockets.append(sock)
        await asyncio.sleep(0.2)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.send(b"\x16\x03\x01\x02\x00\x01")
        for thread in threads:
            thread.start()
        result["flood"] = await paced()
    finally:
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join, 30.0)
        for sock in sockets:
            sock.close()
    result["flood_handshakes"] = outcome
    result["refused"] = await _refusals(setup, pki)
    await loadgen.all("close")
    return result


async def _configure(loadgen: LoadGenerator, setup: Setup, pki: Any, password: str) -> None:
    kind = setup.name.removesuffix("_before")
    tls = kind != "ws"
    await loadgen.all(
        "configure_tls",
        ca=str(pki.ca_cert) if tls else None,
        client_certs=str(pki.dir / "clients") if kind == "mtls_ec" else None,
        password=password,
    )


async def idle_and_storm(
    loadgen: LoadGenerator, setup: Setup, count: int, storm: bool
) -> dict[str, Any]:
    """Memory per idle booted charge point, then (optionally) a reconnect storm of them all."""
    base = setup.usage()
    fleet = fleet_ids("bench-tls", count, 0.3)
    answers = await loadgen.all("connect", fleet=[(setup.url, *cp) for cp in fleet])
    connected = sum(a["connected"] for a in answers)
    failures: dict[str, int] = {}
    for answer in answers:
        for reason, n in answer["failures"].items():
            failures[reason] = failures.get(reason, 0) + n
    await asyncio.sleep(2.0)  # let allocations settle before reading RSS
    held = setup.usage()
    result: dict[str, Any] = {
        "connected": connected,
        "failures": failures,
        "kb_per_cp": (held.rss - base.rss) / 1024 / max(1, connected),
        "cpu_us_per_connect": (held.cpu - base.cpu) * 1e6 / max(1, connected),
    }
    if storm:
        before = setup.usage()
        deadline = time.monotonic() + 120.0
        storms = await loadgen.all("storm", deadline=deadline)
        after = setup.usage()
        booted = sum(s["booted"] for s in storms)
        refused: dict[str, int] = {}
        for answer in storms:
            for reason, n in answer["refused"].items():
                refused[reason] = refused.get(reason, 0) + n
        result["storm"] = {
            "charge_points": sum(s["charge_points"] for s in storms),
            "booted": booted,
            "seconds": max(s["seconds"] for s in storms),
            "refused": refused,
            "cpu_us_per_reconnect": (after.cpu - before.cpu) * 1e6 / max(1, booted),
        }
    await loadgen.all("close")
    return result


PHASES = {
    "full13": (ssl.TLSVersion.TLSv1_3, False),
    "resumed13": (ssl.TLSVersion.TLSv1_3, True),
    "full12": (ssl.TLSVersion.TLSv1_2, False),
    "resumed12": (ssl.TLSVersion.TLSv1_2, True),
}
"""Handshake phases: the client's TLS version, and whether it resumes."""


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians per setup and the ratios to `ws` (paired per repetition where possible).

    Handshake figures are the setup's CPU per connection (TLS handshake, one small HTTP
    request, close) minus the `ws` setup's CPU per plain connection doing the same request.

    Args:
        results: the raw figures of a run (setup -> phases).

    Returns:
        setup -> {"cpu_us_per_rt", "rt_ratio", "kb_per_cp", "extra_kb_per_cp",
        "handshake_us" (phase -> µs), "resumed_share13", "resumed_share12", "storm"}.
    """
    summary: dict[str, Any] = {}
    plain = results.get("ws", {})
    plain_connection = _median(
        [h["cpu_us_per_connection"] for phase in PHASES for h in plain.get(phase, [])]
    )
    for name, data in results.items():
        loops = data.get("loops", [])
        paired = [
            mine["cpu_us_per_rt"] / theirs["cpu_us_per_rt"]
            for mine, theirs in zip(loops, plain.get("loops", []), strict=False)
        ]
        idle = data.get("idle", {})
        handshake: dict[str, float | None] = {}
        for phase in PHASES:
            connection = _median([h["cpu_us_per_connection"] for h in data.get(phase, [])])
            handshake[phase] = (
                connection - plain_connection
                if connection is not None and plain_connection is not None and name != "ws"
                else None
            )
        row: dict[str, Any] = {
            "cpu_us_per_rt": _median([loop["cpu_us_per_rt"] for loop in loops]),
            "rt_ratio": _median(paired),
            "kb_per_cp": idle.get("kb_per_cp"),
            "extra_kb_per_cp": (
                idle["kb_per_cp"] - plain["idle"]["kb_per_cp"]
                if "kb_per_cp" in idle and "idle" in plain
                else None
            ),
            "connection_us": plain_connection if name == "ws" else None,
            "handshake_us": handshake,
            "resumed": {p: sum(h["resumed"] for h in data.get(p, [])) for p in PHASES},
            "storm": idle.get("storm"),
        }
        for version in ("13", "12"):
            full, resumed = handshake[f"full{version}"], handshake[f"resumed{version}"]
            row[f"resumed_share{version}"] = resumed / full if full and resumed else None
        summary[name] = row
    return summary


def table(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table."""

    def cell(value: Any, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    rows = [
        "| setup | CPU µs / rt | vs ws (paired) | KB / idle CP | TLS adds KB / CP "
        "| handshake µs TLS 1.3 full / resumed | TLS 1.2 full / resumed "
        "| storm: back, s, µs / reconnect |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in summary.items():
        hs = row["handshake_us"]
        storm = row.get("storm")
        storm_cell = (
            f"{storm['booted']:,}/{storm['charge_points']:,} in {storm['seconds']:.1f} s, "
            f"{storm['cpu_us_per_reconnect']:,.0f} µs"
            if storm
            else "n/a"
        )
        rows.append(
            f"| {name} | {cell(row['cpu_us_per_rt'], '.1f')} | {cell(row['rt_ratio'], '.2f')}x | "
            f"{cell(row['kb_per_cp'], '.1f')} | {cell(row['extra_kb_per_cp'], '.1f')} | "
            f"{cell(hs['full13'], ',.0f')} / {cell(hs['resumed13'], ',.0f')} | "
            f"{cell(hs['full12'], ',.0f')} / {cell(hs['resumed12'], ',.0f')} | {storm_cell} |"
        )
    return "\n".join(rows)


def flood_table(figures: dict[str, Any]) -> str:
    """The flood phase as a Markdown table."""
    rows = [
        "| gateway (wss, EC) | p50 / p99 ms quiet | p50 / p99 ms during the flood "
        "| gateway CPU quiet / flood (cores) "
        "| flood handshakes completed / refused | refused by the gateway, by reason |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, f in figures.items():
        reasons = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(f["refused"].items())) or "none"
        hs = f["flood_handshakes"]
        rows.append(
            f"| {label} | {f['quiet']['p50_ms']:.2f} / {f['quiet']['p99_ms']:.2f} | "
            f"{f['flood']['p50_ms']:.2f} / {f['flood']['p99_ms']:.2f} | "
            f"{f['quiet']['gateway_cpu_share']:.2f} / {f['flood']['gateway_cpu_share']:.2f} | "
            f"{hs.get('completed', 0):,} / {hs.get('refused', 0):,} | {reasons} |"
        )
    return "\n".join(rows)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every phase on every setup (see the module docstring)."""
    from ocpp_gateway.bench.pki import BENCH_PASSWORD, make_pki

    out = Path(args.out)
    names = [n for n in args.setups.split(",") if n]
    unknown = {n.removesuffix("_before") for n in names} - set(SETUPS)
    if unknown:
        raise SystemExit(f"unknown setup(s) {', '.join(sorted(unknown))}; known: {SETUPS}")
    if any(n.startswith("nginx_ec") for n in names) and not nginx_available():
        raise SystemExit(
            "nginx_ec needs nginx and its stream module (apt-get install nginx libnginx-mod-stream)"
        )
    pki = make_pki(Path(tempfile.mkdtemp(prefix="bench-tls-pki-")))
    ids = [cp for cp, _ in fleet_ids("bench-tls", args.idle, 0.3)]
    ids += [
        cp for r in range(args.repeats) for cp, _ in fleet_ids(f"loop{r}", args.connections, 0.3)
    ]
    ids += [cp for cp, _ in fleet_ids("flood", 100, 0.3)]
    credentials = pki.credentials_file(ids)
    if any(n.startswith("mtls_ec") for n in names):
        pki.add_clients([*ids, "bench-handshake"])
    csms = await CsmsPool.start(1)
    loadgen = LoadGenerator(1, ["127.0.1.1"])
    loadgen.start()
    setups: dict[str, Setup] = {}
    results: dict[str, Any] = {name: {"loops": [], **{p: [] for p in PHASES}} for name in names}
    try:
        for name in names:
            setups[name] = await start_setup(
                name,
                csms,
                out,
                pki,
                credentials,
                Path(args.before) if args.before else None,
                workers=args.workers,
            )
        for name in names:
            await _configure(loadgen, setups[name], pki, BENCH_PASSWORD)
            results[name]["idle"] = await idle_and_storm(
                loadgen, setups[name], args.idle, storm=args.storm
            )
            print(name, "idle", results[name]["idle"], file=sys.stderr)
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                setup = setups[name]
                for phase, (version, resume) in PHASES.items():
                    figures = await handshake_phase(setup, pki, args.handshakes, resume, version)
                    results[name][phase].append(figures)
                await _configure(loadgen, setup, pki, BENCH_PASSWORD)
                fleet = fleet_ids(f"loop{repeat}", args.connections, 0.3)
                await loadgen.all("connect", fleet=[(setup.url, *cp) for cp in fleet])
                loop = await closed_loop(loadgen, setup, args.seconds, args.warmup)
                await loadgen.all("close")
                results[name]["loops"].append(loop)
                print(f"{repeat + 1}/{args.repeats} {name:9}", loop, file=sys.stderr)
        if args.flood:
            results["flood"] = await flood(args, loadgen, csms, out, pki, credentials, setups)
    finally:
        for setup in setups.values():
            setup.stop()
        await loadgen.stop()
        csms.stop()
        shutil.rmtree(pki.dir, ignore_errors=True)
    return results


async def flood(
    args: argparse.Namespace,
    loadgen: LoadGenerator,
    csms: CsmsPool,
    out: Path,
    pki: Any,
    credentials: Path,
    setups: dict[str, Setup],
) -> dict[str, Any]:
    """The flood phase on the EC gateway without and with the gate's per-address limits."""
    from ocpp_gateway.bench.pki import BENCH_PASSWORD

    figures: dict[str, Any] = {}
    for label, gated in (("per-address limits off", False), ("gate defaults", True)):
        setup = await start_setup("wss_ec", csms, out, pki, credentials, gated=gated)
        setups[f"flood-{label}"] = setup
        await _configure(loadgen, setup, pki, BENCH_PASSWORD)
        figures[label] = await flood_phase(
            loadgen, setup, pki, args.flood_seconds, args.flood_rate, args.flood_loris
        )
        print("flood", label, figures[label], file=sys.stderr)
        setup.stop()
    return figures


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway bench tls",
        description="TLS costs of the gateway beside plain ws and nginx terminating TLS.",
    )
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured closed-loop seconds")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=100, help="closed-loop connections")
    parser.add_argument("--idle", type=int, default=1000, help="idle charge points (and storm)")
    parser.add_argument("--handshakes", type=int, default=200, help="connections per phase")
    parser.add_argument("--no-storm", dest="storm", action="store_false")
    parser.add_argument("--out", default="bench-tls")
    parser.add_argument("--before", help="source tree of the `*_before` setups' gateway")
    parser.add_argument(
        "--workers", type=int, default=1, help="gateway (and nginx) worker processes"
    )
    parser.add_argument("--flood", action="store_true", help="also the handshake flood phase")
    parser.add_argument("--flood-seconds", type=float, default=5.0)
    parser.add_argument("--flood-rate", type=float, default=500.0, help="CALLs/s, established")
    parser.add_argument("--flood-loris", type=int, default=200, help="slowloris sockets")
    return parser


def main(argv: Sequence[str]) -> int:
    """Entry point of `ocpp-gateway bench tls`.

    Args:
        argv: the arguments after `tls`.

    Returns:
        0.
    """
    args = _parser().parse_args(list(argv))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    load = os.getloadavg()
    results = asyncio.run(measure(args))
    flooded = results.pop("flood", None)
    summary = summarize(results)
    report = {
        "meta": {
            "argv": list(argv),
            "seconds": time.monotonic() - started,
            "load_before": load,
            "load_after": os.getloadavg(),
            "nproc": os.cpu_count(),
        },
        "setups": results,
        "summary": summary,
        "flood": flooded,
    }
    (out / "tls.json").write_text(json.dumps(report, indent=1))
    text = table(summary)
    if flooded:
        text += "\n\n" + flood_table(flooded)
    (out / "tls.md").write_text(text + "\n")
    print(text)
    return 0
