"""The `ocpp-gateway` command: serve, check-config, demo, bench, hash-password, violations."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from ocpp_gateway.config import GatewayConfig, check_config, load_config
from ocpp_gateway.errors import ConfigError, GatewayError

__all__ = ["main"]

log = logging.getLogger("ocpp_gateway.cli")

_DELEGATES = {
    "demo": "ocpp_gateway.demo",
    "bench": "ocpp_gateway.bench",
    "hash-password": "ocpp_gateway.security.passwords",
    "violations": "ocpp_gateway.violations",
}


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway serve",
        description="Serve charge points on ws://HOST:PORT/ocpp/{id} and relay them.",
    )
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port to listen on (default 9000; 0 = any)")
    parser.add_argument(
        "--upstream", help="CSMS base URL, e.g. ws://csms:9000/ocpp (default: local responder)"
    )
    parser.add_argument("--workers", type=int, help="processes sharing the port (SO_REUSEPORT)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.add_argument(
        "--observe",
        action="store_true",
        help="forward and count payload violations instead of refusing them "
        "(validation.default = observe)",
    )
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    # Security profiles (README "Security"); same names as the [security] table.
    parser.add_argument("--credentials", help="TOML file of charge point id -> password hash")
    parser.add_argument("--tls-cert", help="PEM server certificate: serve wss (profile 2/3)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--client-ca", help="PEM CA of client certificates (profile 3)")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.host,
        "port": args.port,
        "upstream.url": args.upstream,
        "workers": args.workers,
        "log_level": args.log_level,
        "validation.default": "observe" if args.observe else None,
        "security.credentials_file": args.credentials,
        "security.tls_cert": args.tls_cert,
        "security.tls_key": args.tls_key,
        "security.client_ca": args.client_ca,
    }


def _serve(argv: Sequence[str]) -> int:
    from ocpp_gateway.logs import setup_logging

    args = _serve_parser().parse_args(list(argv))
    try:
        config = load_config(args.config, overrides=_overrides(args))
    except ConfigError as exc:
        for error in exc.errors:
            print(f"error: {error}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    if config.workers > 1 and not args.reuse_port:
        return _supervise(config, argv)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") if args.reuse_port else None
    try:
        return int(runner(_serve_async(config, args.reuse_port, metrics_dir)))
    except (OSError, GatewayError, ValueError) as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1


async def _serve_async(config: GatewayConfig, reuse_port: bool, metrics_dir: str | None) -> int:
    from ocpp_gateway.server import start_gateway

    gateway = await start_gateway(config, reuse_port=reuse_port, metrics_dir=metrics_dir)
    # One write, so that the lines of several workers sharing stderr never interleave.
    sys.stderr.write(f"ocpp-gateway listening on {gateway.url}\n")
    sys.stderr.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"drain_timeout": config.drain_timeout})
    await gateway.stop(config.drain_timeout)
    return 0


def _without_flag(argv: Sequence[str], flag: str) -> list[str]:
    out: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == flag:
            skip = True
            continue
        if item.startswith(flag + "="):
            continue
        out.append(item)
    return out


# A crashed worker is restarted; more than this many restarts within the window means
# something is wrong with the machine or the configuration: the supervisor stops and fails.
_MAX_RESTARTS = 5
_RESTART_WINDOW = 60.0


def _supervise(config: GatewayConfig, argv: Sequence[str]) -> int:
    """Run `config.workers` serving processes on one port; forward SIGTERM/SIGINT to them.

    Every worker binds the port with SO_REUSEPORT, and the kernel spreads connections. Metrics
    use prometheus_client's multiprocess mode in a temporary directory, so `/metrics` on any
    worker reports the sum over all workers. A worker that exits while the supervisor is not
    stopping has crashed: its live gauges are dropped from the metrics and it is restarted
    (the charge points it held reconnect to the others). More than `_MAX_RESTARTS` crashes
    within `_RESTART_WINDOW` seconds stop every worker and exit with status 1.
    """
    from ocpp_gateway.metrics import Metrics

    port = config.port
    holder: socket.socket | None = None
    if port == 0:
        # Reserve a concrete port that every worker can share.
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((config.host, 0))
        port = holder.getsockname()[1]
    metrics_dir = tempfile.mkdtemp(prefix="ocpp-gateway-metrics-")
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=metrics_dir)
    child_argv = _without_flag(_without_flag(argv, "--workers"), "--port")
    command = [sys.executable, "-m", "ocpp_gateway.cli", "serve", *child_argv]
    command += ["--workers", "1", "--port", str(port), "--reuse-port"]

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=env)

    workers = {w.pid: w for w in (spawn() for _ in range(config.workers))}
    print(
        f"ocpp-gateway supervising {len(workers)} workers on port {port}",
        file=sys.stderr,
        flush=True,
    )
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            # os.kill, not Popen.send_signal: that would reap the worker behind os.wait's back.
            # A pid is not reused before os.wait reaps it, so this never hits a stranger.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    crashes: list[float] = []
    try:
        while workers:
            pid, wait_status = os.wait()
            worker = workers.pop(pid, None)
            if worker is None:
                continue
            code = worker.returncode = os.waitstatus_to_exitcode(wait_status)
            Metrics.mark_process_dead(pid, metrics_dir)
            if stopping:
                status = status or code
                continue
            now = time.monotonic()
            crashes = [t for t in crashes if now - t < _RESTART_WINDOW] + [now]
            if len(crashes) > _MAX_RESTARTS:
                log.error("workers keep crashing; stopping", extra={"exit_status": code})
                forward(signal.SIGTERM, None)
                status = 1
                continue
            log.warning("worker exited; restarting it", extra={"pid": pid, "exit_status": code})
            replacement = spawn()
            workers[replacement.pid] = replacement
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.terminate()
                worker.wait()
        if holder is not None:
            holder.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return status


def _check_config(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway check-config", description="Validate a configuration file."
    )
    parser.add_argument("file", help="TOML configuration file")
    args = parser.parse_args(list(argv))
    errors = check_config(args.file)
    for error in errors:
        print(f"error: {error}")
    if errors:
        print(f"{args.file}: {len(errors)} error(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ocpp-gateway`.

    Args:
        argv: arguments after the program name; `sys.argv[1:]` when None.

    Returns:
        The process exit status.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    commands = ("serve", "check-config", *_DELEGATES)
    if not args or args[0] in ("-h", "--help"):
        print("usage: ocpp-gateway {" + ",".join(commands) + "} [options]")
        print("  serve         relay charge points to a CSMS (or the local responder)")
        print("  check-config  validate a configuration file, listing every error")
        print("  demo          run a simulated fleet against a gateway")
        print("  bench         run the benchmark suite")
        print("  hash-password hash a charge point password for the credentials file")
        print("  violations    show logged payload violations, or model tables (--toml)")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "serve":
        return _serve(rest)
    if command == "check-config":
        return _check_config(rest)
    if command in _DELEGATES:
        module = importlib.import_module(_DELEGATES[command])
        return int(module.main(rest))
    print(f"ocpp-gateway: unknown command {command!r} (one of {', '.join(commands)})")
    return 2


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
