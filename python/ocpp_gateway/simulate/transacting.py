"""Timers shared by the simulated charge points of every version: heartbeats, status, meters."""

from __future__ import annotations

from typing import Any, ClassVar

from ocpp_gateway.simulate.charge_point import FleetContext, SimChargePoint
from ocpp_gateway.simulate.responses import JsonObject

__all__ = ["TransactingChargePoint"]


class TransactingChargePoint(SimChargePoint):
    """A charge point with `profile.connectors` units (1.6 connectors, 2.x EVSEs) that runs one
    transaction at a time.

    It owns the timer logic (heartbeat, status toggles, transaction start, periodic meter values,
    transaction stop). Subclasses say how each step looks on the wire: `_status`,
    `_start_transaction`, `_stop_transaction`, `_periodic_meter`, `_transaction_id`, and the
    action names `meter_action` (periodic meter values), `remote_start_action` and
    `remote_stop_action` (the CSMS's requests to start and stop a transaction).
    """

    meter_action: ClassVar[str] = ""
    remote_start_action: ClassVar[str] = ""
    remote_stop_action: ClassVar[str] = ""
    __slots__ = ("_idle_status", "_meter_wh", "_tx_state", "_tx_unit")

    def __init__(self, charge_point_id: str, ctx: FleetContext) -> None:
        super().__init__(charge_point_id, ctx)
        self._idle_status: dict[int, str] = {}
        self._tx_unit = 0  # the connector (1.6) or EVSE (2.x) of the transaction, 0 when none
        self._tx_state = "idle"
        self._meter_wh = 0

    # ------------------------------------------------------------- hooks for subclasses

    def _status(self, unit: int, status: str, invalid: bool = False) -> None:
        """Queue the status of `unit`; `invalid`: a value the schema refuses."""
        raise NotImplementedError

    def _start_transaction(self) -> None:
        """Begin a transaction if none is running."""
        raise NotImplementedError

    def _stop_transaction(self, reason: str) -> None:
        """End the running transaction for `reason`."""
        raise NotImplementedError

    def _periodic_meter(self) -> JsonObject:
        """The payload of `meter_action` for a periodic sample."""
        raise NotImplementedError

    def _transaction_id(self) -> Any:
        """The id of the running transaction, as the CSMS names it in a remote stop."""
        raise NotImplementedError

    # ------------------------------------------------------------------------ timers

    def on_booted(self, now: float) -> None:
        profile = self.ctx.profile
        for unit in range(1, profile.connectors + 1):
            self._idle_status[unit] = "Available"
            self._status(unit, "Available")
        self.arm("heartbeat", profile.heartbeat_interval, now, first=True)
        self.arm("status", profile.status_interval, now, first=True)
        self.arm("tx", profile.transaction_interval, now, first=True)

    def on_timer(self, name: str, now: float) -> None:
        profile = self.ctx.profile
        if name == "heartbeat":
            if not self.queued("Heartbeat"):
                self.enqueue("Heartbeat", {})
            self.arm("heartbeat", profile.heartbeat_interval, now)
        elif name == "status":
            if not self.queued("StatusNotification"):
                self._toggle_status()
            self.arm("status", profile.status_interval, now)
        elif name == "tx":
            self._start_transaction()
        elif name == "meter":
            self.arm("meter", profile.meter_interval, now)
            if self.queued(self.meter_action):
                return
            self._meter_wh += 250 + self.ctx.rng.randrange(100)
            self.enqueue(self.meter_action, self._periodic_meter())
        elif name == "tx_stop":
            self._stop_transaction("Local")

    def _toggle_status(self) -> None:
        idle = [u for u in self._idle_status if u != self._tx_unit]
        if not idle:
            return
        unit = self.ctx.rng.choice(idle)
        status = "Unavailable" if self._idle_status[unit] == "Available" else "Available"
        invalid = self.misbehave_now()
        if not invalid:
            self._idle_status[unit] = status
        self._status(unit, status, invalid)

    # ---------------------------------------------------------------- CSMS-initiated calls

    def on_call(self, action: str, payload: JsonObject, now: float) -> JsonObject | None:
        if action == self.remote_start_action:
            if self._tx_state != "idle":
                return {"status": "Rejected"}
            self.arm("tx", 1e-6, now)
            return {"status": "Accepted"}
        if action == self.remote_stop_action:
            if (
                self._tx_state != "charging"
                or payload.get("transactionId") != self._transaction_id()
            ):
                return {"status": "Rejected"}
            self.arm("tx_stop", 1e-6, now)
            return {"status": "Accepted"}
        return super().on_call(action, payload, now)
