"""What one gateway process holds, built once from its configuration and shared by all connections.

The `Runtime` owns the compiled schemas, policies and model rules, the violation log, the
metrics, the plugin chain, the transports and the security layer. The connections themselves
(live ones by identity, every open one, identities reserved by a handshake in progress) are in
the process's `registry.Registry`, beside it. The modules along a frame's path (admission,
connection, relay, drain) read both; none of them keeps process state of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from time import monotonic
from typing import Any

from ocpp_gateway import _core
from ocpp_gateway._core import OcppVersionName
from ocpp_gateway.capture import Capture
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.errors import PluginError, TransportUnavailable
from ocpp_gateway.fanout import Fanout
from ocpp_gateway.logs import FrameLog
from ocpp_gateway.metrics import Metrics
from ocpp_gateway.model_rules import build_model_rules, version_policy
from ocpp_gateway.routing import Chain, build_chain, check_forward_targets
from ocpp_gateway.schemas import VERSIONS, default_schemas, official_schema_dir
from ocpp_gateway.security import SecurityLayer, build_security
from ocpp_gateway.transports import (
    DEFAULT_TRANSPORT,
    SharedOwnership,
    Transport,
    build_transports,
)
from ocpp_gateway.violations.log import ViolationLog
from ocpp_gateway.violations.store import dump_if_changed

__all__ = ["Runtime"]

log = logging.getLogger("ocpp_gateway.runtime")


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
            config.transport_options(), config.security.max_message_bytes
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
        # The gauge of connected charge points per version, moved by the registry.
        self.gauges: dict[str, Any] = {v: self.metrics.connected.labels(v) for v in self.versions}
        self.frame_log = FrameLog()
        self.capture = Capture(config.capture, worker)  # per charge point frame capture
        # The second backends (controllers, observers, candidates), None without any.
        self.fanout: Fanout | None = Fanout.build(config, self.metrics, self.default_transport)

    async def start(self, prober: Callable[[str], Awaitable[bool]] | None = None) -> None:
        """Connect the broker transports; one that cannot be reached now is connected by the
        first charge point (`/readyz` answers 503 meanwhile).

        Args:
            prober: answers another node's takeover ping for an identity held here
                (`Registry.answers_ping`), given to the brokers that ask.
        """
        for broker in self.brokers:
            if prober is not None and hasattr(broker, "prober"):
                broker.prober = prober
            try:
                await broker.start()
            except TransportUnavailable as exc:
                log.warning(
                    "broker unreachable at start-up",
                    extra={"transport": broker.name, "error": str(exc)},
                )

    def ready(self) -> bool:
        """True when the schemas and every broker can take frames (the registry says whether
        charge points are still admitted)."""
        return bool(self.schemas) and all(b.ready() for b in self.brokers)

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

    def cut_over(self, name: str) -> None:
        """Make the candidate backend `name` the primary (the primary a candidate): new charge
        points go to it at once, connected ones as soon as each is quiet
        (`fanout.wiring.switch_primary`, run by the timer). The sockets of the charge points
        stay open.

        Args:
            name: a candidate's name (or the former primary's, to go back).

        Raises:
            ValueError: no such candidate, or no cutover possible in this configuration.
        """
        if self.fanout is None:
            raise ValueError("no candidate backend is configured")
        transport = self.fanout.cutover(name)
        self.transports[DEFAULT_TRANSPORT] = self.default_transport = transport

    def tick_interval(self) -> float:
        """Seconds between two runs of `tick`: at most 1 s, finer for short timeouts."""
        sec = self.config.security
        interval = min(1.0, max(0.05, self.config.call_timeout / 4))
        for timeout in (sec.idle_timeout, sec.ping_interval):
            if timeout > 0:
                interval = min(interval, max(0.05, timeout / 4))
        return interval

    async def run_timer(self, connections: Callable[[float], None]) -> None:
        """One timer per process: every `tick_interval` seconds, forever, the connections'
        timers, then `tick`.

        Args:
            connections: runs every connection's timers (`Registry.tick`).
        """
        interval = self.tick_interval()
        while True:
            await asyncio.sleep(interval)
            now = monotonic()
            connections(now)
            self.tick(now)

    def tick(self, now: float) -> None:
        """The process's own periodic work: the broker transports' command deadlines, then
        flush the batched metrics and write the violation log.

        Args:
            now: `time.monotonic()` (the clock of the relay and the Sessions).
        """
        for broker in self.brokers:
            broker.tick(now)  # backend commands past their deadline time out
        if self.fanout is not None:
            self.fanout.tick(now)  # candidates' comparisons expire, their stores are written
        self.metrics.flush()
        self.dump_violations()

    def dump_violations(self) -> None:
        """Rewrite the violation log file when it changed (`validation.violation_log`)."""
        if self.violations is not None and self.violation_log_path:
            try:
                dump_if_changed(self.violations, self.violation_log_path)
            except OSError as exc:
                log.warning(
                    "cannot write the violation log",
                    extra={"path": self.violation_log_path, "error": str(exc)},
                )
