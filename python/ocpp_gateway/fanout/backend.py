"""A configured second backend (`Backend`) and what its links use of a charge point's connection.

One `Backend` per `[backends.<name>]` table that is not the primary (and the primary itself when a
cutover could swap it with a candidate): its settings, transport, metrics by role, and a
candidate's durable store. The links (`side.SideLink`) share it.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ocpp_gateway._core import OcppVersionName
from ocpp_gateway.calls import CallAnswer
from ocpp_gateway.config import BackendConfig
from ocpp_gateway.config.sections import BackendRole
from ocpp_gateway.fanout.compare import Outcome
from ocpp_gateway.fanout.store import CandidateStore
from ocpp_gateway.logs import Throttle
from ocpp_gateway.metrics import Metrics
from ocpp_gateway.transports import Transport

__all__ = ["LOG_BURST", "Backend", "ChargePoint"]

#: Log lines about one backend's dropped frames per 10 s.
LOG_BURST = 5


class ChargePoint(Protocol):
    """What a `SideLink` uses of its charge point's connection (`connection.Connection`)."""

    @property
    def charge_point_id(self) -> str:
        """The charge point's identity."""
        ...

    @property
    def version(self) -> OcppVersionName:
        """Its OCPP version."""
        ...

    @property
    def primary(self) -> str:
        """The name of its primary backend now."""
        ...

    @property
    def readers(self) -> list[asyncio.Task[None]]:
        """The connection's tasks, cancelled when it ends."""
        ...

    async def call(
        self,
        action: str,
        payload: dict[str, Any],
        timeout: float,  # noqa: ASYNC109
        origin: str = "admin",
    ) -> CallAnswer:
        """A call to the charge point, one at a time with the gateway's others
        (`Connection.call`)."""
        ...


class Backend:
    """One configured second backend, shared by its links: settings, transport, metrics, store.

    Args:
        name: its name under `[backends]`.
        config: its settings.
        transport: its transport.
        metrics: the process's metrics.
    """

    def __init__(
        self, name: str, config: BackendConfig, transport: Transport, metrics: Metrics
    ) -> None:
        self.name = name
        self.role = config.role
        self.config = config
        self.transport = transport
        self.commands = frozenset(config.commands)
        self.store = CandidateStore(config.id_map) if config.id_map else None
        self._answers = metrics.candidate_answers
        self._metrics = metrics
        self.drop_log = Throttle(10.0, LOG_BURST)
        self.connect_log = Throttle(10.0, LOG_BURST)
        self.refusal_log = Throttle(10.0, LOG_BURST)
        self.set_role(config.role)

    def set_role(self, role: BackendRole) -> None:
        """Give the backend its role (at start, and when a cutover swaps primary and candidate).

        Args:
            role: "primary", "controller", "observer" or "candidate".
        """
        self.role = role
        name, metrics = self.name, self._metrics
        self.sent = metrics.backend_frames.labels(name, role, "to_backend")
        self.received = metrics.backend_frames.labels(name, role, "from_backend")
        self.dropped = metrics.backend_dropped.labels(name, role)
        self.allowed = metrics.backend_commands.labels(name, role, "allowed")
        self.refused = metrics.backend_commands.labels(name, role, "refused")
        self.reconnects = metrics.backend_reconnects.labels(name, role)
        if hasattr(self.transport, "log_failures"):
            # A second backend's failures are logged here, rate-bounded; the primary's by
            # its transport, each (a charge point is refused for it).
            self.transport.log_failures = role == "primary"

    def counted(self, action: str, outcome: Outcome) -> None:
        """Count a candidate's compared answer (metric and store)."""
        self._answers.labels(self.name, self._metrics.action_label(action), outcome).inc()
        if self.store is not None:
            self.store.count(action, outcome)
