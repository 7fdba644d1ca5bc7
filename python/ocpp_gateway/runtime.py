"""What one gateway process holds, built once from its configuration and shared by all connections.

The `Runtime` owns the compiled schemas, policies and model rules, the violation log, the
metrics, the plugin chain, the transports, the security layer and the registry of connections
(live ones by identity, every open one, identities reserved by a handshake in progress). The
modules along a frame's path (admission, connection, relay, drain) read it; none of them keeps
process state of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from time import monotonic
from typing import TYPE_CHECKING, Any

from ocpp_gateway import _core
from ocpp_gateway._core import OcppVersionName
from ocpp_gateway.capture import Capture
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.errors import PluginError, TransportUnavailable
from ocpp_gateway.logs import FrameLog
from ocpp_gateway.metrics import Metrics
from ocpp_gateway.model_rules import build_model_rules, version_policy
from ocpp_gateway.routing import Chain, build_chain, check_forward_targets
from ocpp_gateway.security import SecurityLayer, build_security
from ocpp_gateway.session import default_schemas, official_schema_dir
from ocpp_gateway.transports import (
    DEFAULT_TRANSPORT,
    SharedOwnership,
    Transport,
    build_transports,
)
from ocpp_gateway.violations import ViolationLog

if TYPE_CHECKING:
    from ocpp_gateway.connection import Connection

__all__ = ["VERSIONS", "Runtime"]

log = logging.getLogger("ocpp_gateway.runtime")

# The OCPP versions the gateway serves, as subprotocol names.
VERSIONS: tuple[OcppVersionName, ...] = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")


def _compile_schemas(config: GatewayConfig) -> dict[OcppVersionName, _core.SchemaSet]:
    schemas: dict[OcppVersionName, _core.SchemaSet] = {}
    for version in VERSIONS:
        extra = [
            os.path.join(d, version)
            for d in config.validation.schema_dirs
            if os.path.isdir(os.path.join(d, version))
        ]
        try:
            if extra:
                schemas[version] = _core.SchemaSet(
                    version, str(official_schema_dir(version)), extra
                )
            else:
                schemas[version] = default_schemas(version)
        except (ValueError, OSError) as exc:
            # A version whose schemas cannot be compiled is not offered; the others serve.
            log.error("schemas unavailable", extra={"version": version, "error": str(exc)})
    if not schemas:
        raise _core.SchemaError("no OCPP version has usable schemas")
    return schemas


class Runtime:
    """Everything one gateway process holds.

    Args:
        config: the configuration.
        metrics_dir: prometheus_client multiprocess directory, when running several workers.
        transports: transports built in code, by name, added to (or replacing) those of the
            configuration; "default" replaces the default backend.
        worker: this process's worker id (0 without `--workers`).

    Raises:
        ocpp_gateway._core.SchemaError: no OCPP version has usable schemas.
        ocpp_gateway.errors.PluginError: a plugin cannot be loaded or forwards to an unknown
            transport.
    """

    def __init__(
        self,
        config: GatewayConfig,
        metrics_dir: str | None = None,
        transports: Mapping[str, Transport] | None = None,
        worker: int = 0,
    ) -> None:
        self.config = config
        self.worker = worker
        self.schemas = _compile_schemas(config)
        self.versions: tuple[OcppVersionName, ...] = tuple(self.schemas)
        known = {action for s in self.schemas.values() for action, _ in s.actions()}
        self.metrics = Metrics(known, multiprocess_dir=metrics_dir)
        # Frame counters kept by the Sessions themselves, drained by every metrics flush.
        self.stats = {v: self.metrics.new_stats(s) for v, s in self.schemas.items()}
        validation = config.validation
        self.policies: dict[str, _core.Policy] = {
            version: version_policy(validation, version) for version in VERSIONS
        }
        # Per-model policies and relaxations, put in force by the Sessions themselves from the
        # first BootNotification naming the model.
        self.model_rules: dict[str, _core.ModelRules] = build_model_rules(
            validation, {str(v): s for v, s in self.schemas.items()}
        )
        log_path = validation.violation_log
        if log_path and metrics_dir:
            log_path = f"{log_path}.{os.getpid()}"  # several workers: one file each, merged
        self.violation_log_path = log_path
        self.violations = ViolationLog(validation.violation_log_entries) if log_path else None
        self.chain: Chain | None = build_chain(config.plugins)
        self.transports: dict[str, Transport] = build_transports(
            config.backends(), config.security.max_message_bytes
        )
        self.transports.update(transports or {})
        unknown_targets = check_forward_targets(self.chain, self.transports)
        if unknown_targets:
            raise PluginError("; ".join(unknown_targets))
        self.default_transport = self.transports[DEFAULT_TRANSPORT]
        # The default transport when its identities are owned across gateway nodes (a broker):
        # decided once here, not by a Protocol isinstance check per handshake.
        self.shared_ownership: SharedOwnership | None = (
            self.default_transport if isinstance(self.default_transport, SharedOwnership) else None
        )
        # Broker transports (NATS, Redis Streams) connect at start and report readiness.
        self.brokers: list[Any] = [
            t for t in self.transports.values() if hasattr(t, "ready") and hasattr(t, "start")
        ]
        if self.brokers:
            from ocpp_gateway.transports.broker.metrics import BrokerCollector

            self.metrics.add_collector(BrokerCollector(self.brokers))
        # With transports besides the default one, a charge point may talk to several
        # backends: each connection then remembers which backend made each call.
        self.track_origins = self.chain is not None and len(self.transports) > 1
        self.security: SecurityLayer = build_security(config.security, self.metrics)
        self.live: dict[str, Connection] = {}
        self.connections: set[Connection] = set()
        # Identities between the takeover decision and registration: newcomers get 409.
        self.reserved: set[str] = set()
        self.accepting = True
        # Set while draining; the relay pokes it whenever a result went by or a socket closed.
        self.drain_progress: asyncio.Event | None = None
        self.gauges: dict[str, Any] = {v: self.metrics.connected.labels(v) for v in self.versions}
        self.frame_log = FrameLog()
        self.capture = Capture(config.capture, worker)  # per charge point frame capture

    async def start(self) -> None:
        """Connect the broker transports; one that cannot be reached now is connected by the
        first charge point (`/readyz` answers 503 meanwhile)."""
        for broker in self.brokers:
            if hasattr(broker, "prober"):
                broker.prober = self.answers_ping
            try:
                await broker.start()
            except TransportUnavailable as exc:
                log.warning(
                    "broker unreachable at start-up",
                    extra={"transport": broker.name, "error": str(exc)},
                )

    async def answers_ping(self, charge_point_id: str) -> bool:
        """Whether this process's connection of an identity answers a takeover ping (asked
        by another gateway node through a broker before it lets a newcomer displace it).

        Args:
            charge_point_id: the identity.

        Returns:
            True while a newcomer of that identity is being admitted here; False when no
            connection holds it here or the ping went unanswered.
        """
        if charge_point_id in self.reserved:
            return True  # a connection of it is being admitted here (its claim is the newest)
        connection = self.live.get(charge_point_id)
        return connection is not None and await connection.answers_ping()

    def ready(self) -> bool:
        """True when the gateway accepts charge points and every broker can take frames."""
        return self.accepting and bool(self.schemas) and all(b.ready() for b in self.brokers)

    def new_session(self, version: OcppVersionName) -> _core.Session:
        """Returns: a Session of `version` with the configured schemas, policy and timeout."""
        return _core.Session(
            version,
            self.schemas[version],
            self.policies[version],
            self.config.call_timeout,
            model_rules=self.model_rules.get(version),
            stats=self.stats[version],
        )

    def register(self, conn: Connection) -> None:
        """Make an accepted connection the live one of its identity."""
        self.live[conn.charge_point_id] = conn
        self.connections.add(conn)
        self.gauges[conn.version].inc()
        log.info(
            "charge point connected",
            extra={
                "charge_point_id": conn.charge_point_id,
                "remote": conn.info.remote,
                "subprotocol": conn.version,
            },
        )

    def unregister(self, conn: Connection) -> None:
        """Forget a connection that ended; idempotent."""
        if conn in self.connections:
            self.connections.discard(conn)
            self.gauges[conn.version].dec()
        if self.live.get(conn.charge_point_id) is conn:
            del self.live[conn.charge_point_id]
        if self.drain_progress is not None:
            self.drain_progress.set()

    def tick_interval(self) -> float:
        """Seconds between two runs of `tick`: at most 1 s, finer for short timeouts."""
        sec = self.config.security
        interval = min(1.0, max(0.05, self.config.call_timeout / 4))
        for timeout in (sec.idle_timeout, sec.ping_interval):
            if timeout > 0:
                interval = min(interval, max(0.05, timeout / 4))
        return interval

    async def run_timer(self) -> None:
        """One timer per process: runs `tick` every `tick_interval` seconds, forever."""
        interval = self.tick_interval()
        while True:
            await asyncio.sleep(interval)
            self.tick(monotonic())

    def tick(self, now: float) -> None:
        """Run every connection's timers (call expiry, idle close, keep-alive pings) and the
        broker transports' command deadlines, then flush the batched metrics and write the
        violation log.

        Args:
            now: `time.monotonic()` (the clock of the relay and the Sessions).
        """
        for conn in list(self.connections):
            conn.tick(now)
        for broker in self.brokers:
            broker.tick(now)  # backend commands past their deadline time out
        self.metrics.flush()
        self.dump_violations()

    def dump_violations(self) -> None:
        """Rewrite the violation log file when it changed (`validation.violation_log`)."""
        if self.violations is not None and self.violation_log_path:
            try:
                self.violations.dump_if_changed(self.violation_log_path)
            except OSError as exc:
                log.warning(
                    "cannot write the violation log",
                    extra={"path": self.violation_log_path, "error": str(exc)},
                )
