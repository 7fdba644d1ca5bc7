"""The `ocpp-gateway` command: serve, check-config, demo, bench, hash-password, violations."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ocpp_gateway.config import GatewayConfig, load_config
from ocpp_gateway.errors import ConfigError, GatewayError
from ocpp_gateway.preflight import check_config

if TYPE_CHECKING:
    from ocpp_gateway.runtime import Runtime

__all__ = ["main"]

log = logging.getLogger("ocpp_gateway.cli")

_DELEGATES = {
    "demo": "ocpp_gateway.demo",
    "bench": "ocpp_gateway.bench",
    "hash-password": "ocpp_gateway.security.passwords",
    "violations": "ocpp_gateway.violations.report",
    "replay": "ocpp_gateway.replay",
    "candidate-report": "ocpp_gateway.fanout.report",
}


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings flags, shared by serve and check-config so that the two never drift."""
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
    parser.add_argument("--log-format", choices=("json", "text"), help="stderr lines (json)")
    parser.add_argument(
        "--admin-port", type=int, help="admin listener port: metrics, probes, API (0 = any)"
    )
    # Security profiles (README "Security"); same names as the [security] table.
    parser.add_argument("--credentials", help="TOML file of charge point id -> password hash")
    parser.add_argument("--tls-cert", help="PEM server certificate: serve wss (profile 2/3)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--client-ca", help="PEM CA of client certificates (profile 3)")


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway serve",
        description="Serve charge points on ws://HOST:PORT/ocpp/{id} and relay them.",
    )
    _add_config_arguments(parser)
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    # Given by the supervisor to its workers.
    parser.add_argument("--worker-id", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--peer-dir", help=argparse.SUPPRESS)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.host,
        "port": args.port,
        "upstream.url": args.upstream,
        "workers": args.workers,
        "log_level": args.log_level,
        "validation.default": "observe" if args.observe else None,
        "log_format": args.log_format,
        "admin.port": args.admin_port,
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
    supervising = config.workers > 1 and not args.reuse_port
    worker: int | str = "supervisor" if supervising else args.worker_id
    setup_logging(config.log_level, fmt=config.log_format, worker=worker)
    if supervising:
        from ocpp_gateway.supervisor import supervise

        return supervise(config, argv)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") if args.reuse_port else None

    def reread() -> GatewayConfig:
        return load_config(args.config, overrides=_overrides(args))

    try:
        serving = _serve_async(
            config, args.reuse_port, metrics_dir, args.worker_id, args.peer_dir, reread
        )
        return int(runner(serving))
    except (OSError, GatewayError, ValueError) as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1


async def _serve_async(
    config: GatewayConfig,
    reuse_port: bool,
    metrics_dir: str | None,
    worker: int = 0,
    peer_dir: str | None = None,
    reread: Callable[[], GatewayConfig] | None = None,
) -> int:
    from ocpp_gateway.server import start_gateway

    gateway = await start_gateway(
        config, reuse_port=reuse_port, metrics_dir=metrics_dir, worker=worker, peer_dir=peer_dir
    )
    # SIGTERM drains from the moment the lines below announce the gateway, not a moment later.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reread is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload, gateway.runtime, reread)
    # Plain lines, one write each (the workers share stderr): scripts and tests wait for them.
    sys.stderr.write(f"ocpp-gateway listening on {gateway.url}\n")
    if gateway.admin_url:
        sys.stderr.write(f"ocpp-gateway admin (probes, metrics, API) at {gateway.admin_url}\n")
    sys.stderr.flush()
    await stop.wait()
    log.info("shutting down", extra={"drain_timeout": config.drain_timeout})
    await gateway.stop(config.drain_timeout)
    return 0


def _reload(runtime: Runtime, reread: Callable[[], GatewayConfig]) -> None:
    """SIGHUP: read the configuration again; a primary change is a cutover, the rest is
    reported as needing a restart (`fanout.reload`); a configuration with errors changes
    nothing."""
    from ocpp_gateway.fanout.reload import apply_reload

    try:
        config = reread()
    except ConfigError as exc:
        log.error(
            "reload: the configuration has errors, nothing changed", extra={"errors": exc.errors}
        )
        return
    apply_reload(runtime, config)


def _check_config(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway check-config",
        description="Validate the configuration serve would run with: the TOML file, then the "
        "OCPP_GATEWAY_* environment variables, then these flags (the same as serve's).",
    )
    parser.add_argument("file", nargs="?", help="TOML configuration file (or --config FILE)")
    _add_config_arguments(parser)
    args = parser.parse_args(list(argv))
    if args.file and args.config and args.file != args.config:
        parser.error("give the file once: as an argument or with --config")
    path = args.file or args.config
    name = path or "configuration"
    # The loader of serve (load_config) with the same file, environment and flags, then the
    # checks serve makes at start-up (security files, plugins).
    errors = check_config(path, os.environ, _overrides(args))
    for error in errors:
        print(f"error: {error}")
    if errors:
        print(f"{name}: {len(errors)} error(s)", file=sys.stderr)
        return 1
    print(f"{name}: ok")
    return 0


def _print_version() -> int:
    from ocpp_gateway.about import versions

    found = versions()
    print(f"ocpp-gateway {found['ocpp-gateway']}")
    print(f"core (Rust) {found['core']}")
    print(f"ocpp schemas {found['ocpp']}")
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
    if args and args[0] in ("-V", "--version"):
        return _print_version()
    if not args or args[0] in ("-h", "--help"):
        print("usage: ocpp-gateway {" + ",".join(commands) + "} [options] | --version")
        print("  serve         relay charge points to a CSMS (or the local responder)")
        print("  check-config  validate a configuration (file, environment, flags), every error")
        print("  demo          run a simulated fleet against a gateway")
        print("  bench         run the benchmark suite")
        print("  hash-password hash a charge point password for the credentials file")
        print("  violations    show logged payload violations, or model tables (--toml)")
        print(
            "  replay        play a charge point's side of a trace against a CSMS, report changes"
        )
        print("  candidate-report  how a candidate backend's answers compared with the primary's")
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
