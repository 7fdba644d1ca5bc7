"""The aiohttp application and its endpoints: `/ocpp/{id}`, `/metrics`, `/healthz`, `/readyz`.

With `admin.port` set, a second listener (`admin`) serves `/metrics`, `/healthz`, `/readyz`
and the admin API; `metrics_on_main_port` decides whether the charge point port keeps the
first three. With `proxy_protocol`, the charge point port is a `proxy.ProxySite`; otherwise,
with TLS, a `gate.GatedSite` (limits before the TLS handshake). Both listeners run through
`listener.GuardedRunner` (parser errors answered without echo, no version banner); the admin one
also gets its idle timeout and connection cap.

A charge point's request goes through `admission` (which decides between an accepted connection
and a refusal), then through `relay.run` (the two pumps) until it ends; `drain` stops the
whole process gracefully. The process state lives in `runtime.Runtime` (built once) and
`registry.Registry` (the connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ocpp_gateway import relay
from ocpp_gateway.admin import admin_ssl_context, build_admin_app, remove_stale
from ocpp_gateway.admin_peers import peer_socket
from ocpp_gateway.admission import Admission, negotiate_subprotocol
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.connection import Connection
from ocpp_gateway.drain import drain
from ocpp_gateway.gate import GatedSite, GateLimits, HandshakeGate
from ocpp_gateway.listener import GuardedRunner, ListenerGuard
from ocpp_gateway.metrics import CONTENT_TYPE
from ocpp_gateway.proxy import ProxySite, TrustedProxies, resolve_forwarded
from ocpp_gateway.registry import Registry
from ocpp_gateway.runtime import Runtime
from ocpp_gateway.transports import Transport

__all__ = ["RunningGateway", "negotiate_subprotocol", "start_gateway"]

log = logging.getLogger("ocpp_gateway.server")


class _Endpoints:
    """The request handlers of one runtime."""

    def __init__(self, runtime: Runtime, registry: Registry[Connection]) -> None:
        self._runtime = runtime
        self._registry = registry
        self._admission = Admission(runtime, registry)
        self._trusted = TrustedProxies(runtime.config.trusted_proxies)

    async def ocpp(self, request: web.Request) -> web.StreamResponse:
        if self._trusted:
            request = resolve_forwarded(request, self._trusted)
        try:
            admitted = await self._admission.admit(request)
            if not isinstance(admitted, Connection):
                return admitted
            await relay.run(self._runtime, admitted)
            return admitted.ws
        finally:
            self._runtime.security.release(request)

    async def unknown_path(self, request: web.Request) -> web.Response:
        return self._admission.refuse_unknown_path(request)

    async def metrics(self, request: web.Request) -> web.Response:
        body = self._runtime.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "connections": len(self._registry.connections)})

    async def readyz(self, request: web.Request) -> web.Response:
        runtime = self._runtime
        accepting = self._registry.accepting
        ready = accepting and runtime.ready()
        body: dict[str, object] = {
            "ready": ready,
            "accepting": accepting,
            "schemas": sorted(runtime.schemas),
        }
        if runtime.brokers:
            body["brokers"] = {b.name: b.ready() for b in runtime.brokers}
        return web.json_response(body, status=200 if ready else 503)


class RunningGateway:
    """A gateway serving on a port. Build it with `start_gateway`.

    Attributes:
        runtime: its built-once products.
        registry: its connections.
        host: the address it listens on.
        port: the real port (also when the configuration asked for 0).
        url: "ws://127.0.0.1:PORT" (or "wss://" with TLS); charge points use `{url}/ocpp/{id}`.
        metrics: the Metrics object.
        config: the configuration it runs with.
        admin_port: the admin listener's real port, or None without one.
        admin_url: "http://127.0.0.1:PORT" (or "https://"), or None.
    """

    def __init__(
        self,
        runtime: Runtime,
        registry: Registry[Connection],
        runner: web.AppRunner,
        host: str,
        port: int,
        scheme: str,
        expire_task: asyncio.Task[None],
        admin: tuple[web.AppRunner, int, str] | None = None,
    ) -> None:
        self.runtime = runtime
        self.registry = registry
        self._runner = runner
        self._admin_runner = admin[0] if admin else None
        self.admin_port = admin[1] if admin else None
        self._expire_task = expire_task
        self.host = host
        self.port = port
        self.url = f"{scheme}://{_connect_host(host)}:{port}"
        self.admin_url = (
            f"{admin[2]}://{_connect_host(runtime.config.admin.host)}:{admin[1]}" if admin else None
        )
        self.metrics = runtime.metrics
        self.config = runtime.config
        self._stopped = False

    @property
    def connections(self) -> int:
        """Number of charge points connected now."""
        return len(self.registry.connections)

    def tick(self, now: float) -> None:
        """Run what the process timer runs (about once a second) at once: every connection's
        timers, then the metrics flush and the violation log.

        Args:
            now: `time.monotonic()`, or a later time to expire what would be due then.
        """
        self.registry.tick(now)
        self.runtime.tick(now)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop gracefully: refuse new handshakes, let pending calls finish, close with 1001.

        Args:
            drain_timeout: seconds to wait for pending calls; the configured value when None.
        """
        if self._stopped:
            return
        self._stopped = True
        timeout = self.config.drain_timeout if drain_timeout is None else drain_timeout
        await drain(self.runtime, self.registry, timeout)
        self._expire_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._expire_task
        await self._runner.cleanup()
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
        self.runtime.security.close()  # password verification threads
        self.runtime.capture.close()  # the trace file writer


def _connect_host(host: str) -> str:
    """The address a local client uses for a listener bound to `host`."""
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"[{connect_host}]" if ":" in connect_host else connect_host


def _loopback(host: str) -> bool:
    """Whether a listen address is on loopback only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _bound_port(site: web.TCPSite, asked: int) -> int:
    server: Any = site._server
    if server is not None and getattr(server, "sockets", None):
        sock: socket.socket = server.sockets[0]
        return int(sock.getsockname()[1])
    return asked


async def _start_admin(
    runtime: Runtime,
    registry: Registry[Connection],
    endpoints: _Endpoints,
    reuse_port: bool,
    peer_dir: str | None,
) -> tuple[web.AppRunner, int, str]:
    """Start the admin listener (and this worker's admin socket under `--workers`).

    Returns:
        Its runner, real port and scheme.
    """
    config = runtime.config
    assert config.admin.port is not None
    health = [
        ("/metrics", endpoints.metrics),
        ("/healthz", endpoints.healthz),
        ("/readyz", endpoints.readyz),
    ]
    app = build_admin_app(runtime, registry, health, peer_dir)
    refused = runtime.metrics.admin_refused
    guard = ListenerGuard(
        "admin",
        lambda reason: refused.labels(reason).inc(),
        config.admin.max_connections,
        config.admin.max_connections_per_ip,
    )
    # aiohttp's keep-alive timer runs from accept until a complete request head arrives, and
    # between requests: idle and slowloris connections are closed after idle_timeout.
    runner = GuardedRunner(
        app,
        guard,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=1.0,
        keepalive_timeout=config.admin.idle_timeout,
    )
    await runner.setup()
    ssl_context = admin_ssl_context(config.admin.tls_cert, config.admin.tls_key)
    if ssl_context is None and config.admin.token and not _loopback(config.admin.host):
        log.warning(
            "admin API on plain http beyond loopback: its bearer token crosses the network "
            "in clear; set admin.tls_cert and admin.tls_key, or keep the port on a private "
            "network (README: admin listener)",
            extra={"host": config.admin.host},
        )
    site = web.TCPSite(
        runner,
        config.admin.host,
        config.admin.port,
        ssl_context=ssl_context,
        reuse_port=reuse_port or None,
    )
    try:
        await site.start()
        if peer_dir is not None:
            path = peer_socket(peer_dir, runtime.worker)
            await remove_stale(path)
            await web.UnixSite(runner, path).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner, _bound_port(site, config.admin.port), "https" if ssl_context else "http"


async def start_gateway(
    config: GatewayConfig,
    *,
    reuse_port: bool = False,
    metrics_dir: str | None = None,
    transports: Mapping[str, Transport] | None = None,
    worker: int = 0,
    peer_dir: str | None = None,
) -> RunningGateway:
    """Start serving charge points.

    Args:
        config: the configuration.
        reuse_port: bind with SO_REUSEPORT (several worker processes on one port).
        metrics_dir: prometheus_client multiprocess directory, when running several workers.
        transports: transports built in code (embedding the gateway, a backend of your own),
            by name; they add to those of the configuration, and "default" replaces the
            default backend.
        worker: this process's worker id (on every log line and in the admin API).
        peer_dir: under `--workers`, the directory of the workers' admin sockets.

    Returns:
        The running gateway.

    Raises:
        OSError: the port cannot be bound.
        ocpp_gateway._core.SchemaError: the schemas cannot be compiled.
        ocpp_gateway.errors.PluginError: a plugin cannot be loaded.
    """
    runtime = Runtime(config, metrics_dir, transports, worker)
    registry: Registry[Connection] = Registry(runtime.gauges)
    await runtime.start(prober=registry.answers_ping)
    endpoints = _Endpoints(runtime, registry)
    app = web.Application(client_max_size=config.security.max_message_bytes)
    app.router.add_get("/ocpp/{charge_point_id}", endpoints.ocpp)
    # Some deployments configure their chargers with a trailing slash: the same endpoint.
    app.router.add_get("/ocpp/{charge_point_id}/", endpoints.ocpp)
    if config.metrics_on_main_port or config.admin.port is None:
        app.router.add_get("/metrics", endpoints.metrics)
        app.router.add_get("/healthz", endpoints.healthz)
        app.router.add_get("/readyz", endpoints.readyz)
    # Any other path: a 404 that is counted and logged (a charger with a wrong URL). GET only,
    # so that another method on an endpoint still gets its 405.
    app.router.add_get("/{tail:.*}", endpoints.unknown_path)
    # aiohttp's keep-alive timer also runs from accept until a complete request head arrives:
    # bounding it by the handshake timeout closes slowloris sockets.
    handshake_timeout = config.security.handshake_timeout
    refused = runtime.metrics.handshakes_refused
    runner = GuardedRunner(
        app,
        ListenerGuard("charge_point", lambda reason: refused.labels(reason).inc()),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=1.0,
        keepalive_timeout=handshake_timeout if handshake_timeout > 0 else 75.0,
    )
    await runner.setup()
    ssl_context = runtime.security.ssl_context()
    site: web.TCPSite
    if config.proxy_protocol:
        site = ProxySite(
            runner,
            config.host,
            config.port,
            trusted=TrustedProxies(config.trusted_proxies),
            header_timeout=handshake_timeout,
            ssl_context=ssl_context,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
    elif ssl_context is not None and (limits := GateLimits.of(config.security)):
        refused = runtime.metrics.handshakes_refused
        site = GatedSite(
            runner,
            config.host,
            config.port,
            ssl_context=ssl_context,
            gate=HandshakeGate(limits),
            handshake_timeout=handshake_timeout,
            on_refused=lambda reason: refused.labels(reason=reason).inc(),
            reuse_port=reuse_port or None,
            backlog=1024,
        )
    else:
        site = web.TCPSite(
            runner,
            config.host,
            config.port,
            ssl_context=ssl_context,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    port = _bound_port(site, config.port)
    admin = None
    if config.admin.port is not None:
        try:
            admin = await _start_admin(runtime, registry, endpoints, reuse_port, peer_dir)
        except OSError:
            await runner.cleanup()
            raise
    expire_task = asyncio.create_task(runtime.run_timer(registry.tick))
    log.info(
        "gateway listening",
        extra={
            "host": config.host,
            "port": port,
            "admin_port": admin[1] if admin else None,
            "proxy_protocol": config.proxy_protocol,
            "transport": type(runtime.default_transport).__name__,
            "plugins": list(config.plugins.enabled),
        },
    )
    scheme = "wss" if ssl_context else "ws"
    return RunningGateway(runtime, registry, runner, config.host, port, scheme, expire_task, admin)
