"""The aiohttp application and its endpoints: `/ocpp/{id}`, `/metrics`, `/healthz`, `/readyz`.

A charge point's request goes through `admission` (which decides between an accepted connection
and a refusal), then through `relay.run` (the two pumps) until it ends; `drain` stops the
whole process gracefully. The process state lives in `runtime.Runtime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ocpp_gateway import relay
from ocpp_gateway.admission import Admission, negotiate_subprotocol
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.connection import Connection
from ocpp_gateway.drain import drain
from ocpp_gateway.metrics import CONTENT_TYPE
from ocpp_gateway.runtime import VERSIONS, Runtime
from ocpp_gateway.transports import Transport

__all__ = ["SUBPROTOCOLS", "RunningGateway", "negotiate_subprotocol", "start_gateway"]

log = logging.getLogger("ocpp_gateway.server")

SUBPROTOCOLS = VERSIONS


class _Endpoints:
    """The request handlers of one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._admission = Admission(runtime)

    async def ocpp(self, request: web.Request) -> web.StreamResponse:
        try:
            admitted = await self._admission.admit(request)
            if not isinstance(admitted, Connection):
                return admitted
            await relay.run(self._runtime, admitted)
            return admitted.ws
        finally:
            self._runtime.security.release(request)

    async def metrics(self, request: web.Request) -> web.Response:
        body = self._runtime.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "connections": len(self._runtime.connections)})

    async def readyz(self, request: web.Request) -> web.Response:
        runtime = self._runtime
        ready = runtime.ready()
        body: dict[str, object] = {
            "ready": ready,
            "accepting": runtime.accepting,
            "schemas": sorted(runtime.schemas),
        }
        if runtime.brokers:
            body["brokers"] = {b.name: b.ready() for b in runtime.brokers}
        return web.json_response(body, status=200 if ready else 503)


class RunningGateway:
    """A gateway serving on a port. Build it with `start_gateway`.

    Attributes:
        host: the address it listens on.
        port: the real port (also when the configuration asked for 0).
        url: "ws://127.0.0.1:PORT" (or "wss://" with TLS); charge points use `{url}/ocpp/{id}`.
        metrics: the Metrics object.
        config: the configuration it runs with.
    """

    def __init__(
        self,
        runtime: Runtime,
        runner: web.AppRunner,
        host: str,
        port: int,
        scheme: str,
        expire_task: asyncio.Task[None],
    ) -> None:
        self.runtime = runtime
        self._runner = runner
        self._expire_task = expire_task
        self.host = host
        self.port = port
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        if ":" in connect_host:
            connect_host = f"[{connect_host}]"
        self.url = f"{scheme}://{connect_host}:{port}"
        self.metrics = runtime.metrics
        self.config = runtime.config
        self._stopped = False

    @property
    def connections(self) -> int:
        """Number of charge points connected now."""
        return len(self.runtime.connections)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop gracefully: refuse new handshakes, let pending calls finish, close with 1001.

        Args:
            drain_timeout: seconds to wait for pending calls; the configured value when None.
        """
        if self._stopped:
            return
        self._stopped = True
        timeout = self.config.drain_timeout if drain_timeout is None else drain_timeout
        await drain(self.runtime, timeout)
        self._expire_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._expire_task
        await self._runner.cleanup()
        self.runtime.security.close()  # password verification threads


async def start_gateway(
    config: GatewayConfig,
    *,
    reuse_port: bool = False,
    metrics_dir: str | None = None,
    transports: Mapping[str, Transport] | None = None,
) -> RunningGateway:
    """Start serving charge points.

    Args:
        config: the configuration.
        reuse_port: bind with SO_REUSEPORT (several worker processes on one port).
        metrics_dir: prometheus_client multiprocess directory, when running several workers.
        transports: transports built in code (embedding the gateway, a backend of your own),
            by name; they add to those of the configuration, and "default" replaces the
            default backend.

    Returns:
        The running gateway.

    Raises:
        OSError: the port cannot be bound.
        ocpp_gateway._core.SchemaError: the schemas cannot be compiled.
        ocpp_gateway.errors.PluginError: a plugin cannot be loaded.
    """
    runtime = Runtime(config, metrics_dir, transports)
    await runtime.start()
    endpoints = _Endpoints(runtime)
    app = web.Application(client_max_size=config.security.max_message_bytes)
    app.router.add_get("/ocpp/{charge_point_id}", endpoints.ocpp)
    # Some deployments configure their chargers with a trailing slash: the same endpoint.
    app.router.add_get("/ocpp/{charge_point_id}/", endpoints.ocpp)
    app.router.add_get("/metrics", endpoints.metrics)
    app.router.add_get("/healthz", endpoints.healthz)
    app.router.add_get("/readyz", endpoints.readyz)
    # aiohttp's keep-alive timer also runs from accept until a complete request head arrives:
    # bounding it by the handshake timeout closes slowloris sockets.
    handshake_timeout = config.security.handshake_timeout
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=1.0,
        keepalive_timeout=handshake_timeout if handshake_timeout > 0 else 75.0,
    )
    await runner.setup()
    ssl_context = runtime.security.ssl_context()
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
    server: Any = site._server
    port = config.port
    if server is not None and getattr(server, "sockets", None):
        sock: socket.socket = server.sockets[0]
        port = sock.getsockname()[1]
    expire_task = asyncio.create_task(runtime.run_timer())
    log.info(
        "gateway listening",
        extra={
            "host": config.host,
            "port": port,
            "transport": type(runtime.default_transport).__name__,
            "plugins": list(config.plugins.enabled),
        },
    )
    return RunningGateway(
        runtime, runner, config.host, port, "wss" if ssl_context else "ws", expire_task
    )
