"""OCPP 2.0.1 behaviour of a simulated charging station: boot, status, TransactionEvent."""

from __future__ import annotations

from typing import Any, ClassVar

from ocpp_gateway.simulate.charge_point import FleetContext
from ocpp_gateway.simulate.responses import JsonObject
from ocpp_gateway.simulate.transacting import TransactingChargePoint

# (measurand, unit, phase or None, typical value) cycled through to build N sampled values.
__all__ = ["ChargePoint201"]


_SAMPLES: tuple[tuple[str, str, str | None, float], ...] = (
    ("Energy.Active.Import.Register", "Wh", None, 0.0),
    ("Power.Active.Import", "W", None, 11000.0),
    ("Current.Import", "A", "L1", 16.0),
    ("Current.Import", "A", "L2", 16.0),
    ("Current.Import", "A", "L3", 16.0),
    ("Voltage", "V", "L1-N", 230.1),
    ("Voltage", "V", "L2-N", 229.8),
    ("Voltage", "V", "L3-N", 230.4),
    ("SoC", "Percent", None, 50.0),
    ("Frequency", "Hertz", None, 50.0),
    ("Power.Offered", "W", None, 22000.0),
    ("Current.Offered", "A", None, 32.0),
)


class ChargePoint201(TransactingChargePoint):
    """A 2.0.1 charging station with `profile.connectors` EVSEs (one connector each)."""

    version: ClassVar[str] = "ocpp2.0.1"
    remote_start_action: ClassVar[str] = "RequestStartTransaction"
    remote_stop_action: ClassVar[str] = "RequestStopTransaction"
    meter_action: ClassVar[str] = "TransactionEvent"
    __slots__ = ("_seq_no", "_tx_count", "_tx_id")

    def __init__(self, charge_point_id: str, ctx: FleetContext) -> None:
        super().__init__(charge_point_id, ctx)
        self._tx_id = ""  # _tx_state: idle, authorizing, charging, stopping
        self._tx_count = 0
        self._seq_no = 0

    # ------------------------------------------------------------------ payloads

    def boot_payload(self, invalid: bool) -> JsonObject:
        profile = self.ctx.profile
        model = profile.model + "-" + "X" * 30 if invalid else profile.model[:20]
        return {
            "reason": "PowerUp",
            "chargingStation": {
                "model": model,
                "vendorName": profile.vendor[:50],
                "serialNumber": self.charge_point_id[-25:],
                "firmwareVersion": "1.0.0",
            },
        }

    def _status(self, evse: int, status: str, invalid: bool = False) -> None:
        payload = {
            "timestamp": self.timestamp(),
            "connectorStatus": "Broken" if invalid else status,
            "evseId": evse,
            "connectorId": 1,
        }
        self.enqueue("StatusNotification", payload, invalid)

    def _meter_value(self, context: str) -> list[JsonObject]:
        sampled = []
        for i in range(self.ctx.profile.meter_samples):
            measurand, unit, phase, typical = _SAMPLES[i % len(_SAMPLES)]
            item: JsonObject = {
                "value": float(self._meter_wh) if i == 0 else typical,
                "context": context,
                "measurand": measurand,
                "location": "Outlet",
                "unitOfMeasure": {"unit": unit},
            }
            if phase is not None:
                item["phase"] = phase
            sampled.append(item)
        return [{"timestamp": self.timestamp(), "sampledValue": sampled}]

    def _transaction_event(
        self, event_type: str, trigger: str, context: str, **extra: Any
    ) -> JsonObject:
        info: JsonObject = {"transactionId": self._tx_id}
        payload: JsonObject = {
            "eventType": event_type,
            "timestamp": self.timestamp(),
            "triggerReason": trigger,
            "seqNo": self._seq_no,
            "transactionInfo": info,
            "meterValue": self._meter_value(context),
        }
        self._seq_no += 1
        if event_type == "Started":
            info["chargingState"] = "Charging"
            payload["evse"] = {"id": self._tx_unit, "connectorId": 1}
            payload["idToken"] = {"idToken": self.ctx.profile.id_tag[:36], "type": "ISO14443"}
        elif event_type == "Ended":
            info["stoppedReason"] = extra.get("reason", "Local")
            info["chargingState"] = "Idle"
        return payload

    def _transaction_id(self) -> str:
        return self._tx_id

    def _periodic_meter(self) -> JsonObject:
        return self._transaction_event("Updated", "MeterValuePeriodic", "Sample.Periodic")

    # --------------------------------------------------------------------- hooks

    def _start_transaction(self) -> None:
        if self._tx_state != "idle":
            return
        self._tx_unit = self.ctx.rng.randrange(1, self.ctx.profile.connectors + 1)
        self._tx_count += 1
        self._tx_id = f"{self.charge_point_id[-24:]}-{self._tx_count}"
        self._seq_no = 0
        self._tx_state = "authorizing"
        self._status(self._tx_unit, "Occupied")
        self.enqueue(
            "Authorize", {"idToken": {"idToken": self.ctx.profile.id_tag[:36], "type": "ISO14443"}}
        )

    def _stop_transaction(self, reason: str) -> None:
        if self._tx_state != "charging":
            return
        self._tx_state = "stopping"
        self.disarm("meter")
        self.disarm("tx_stop")
        self.enqueue(
            "TransactionEvent",
            self._transaction_event("Ended", "StopAuthorized", "Transaction.End", reason=reason),
        )

    def _end_transaction(self, now: float) -> None:
        evse = self._tx_unit
        self._status(evse, "Available")
        self._idle_status[evse] = "Available"
        self._tx_state = "idle"
        self._tx_unit = 0
        self.disarm("meter")
        self.disarm("tx_stop")
        self.arm("tx", self.ctx.profile.transaction_interval, now)

    def on_result(self, action: str, payload: Any, now: float) -> None:
        if action == "Authorize" and self._tx_state == "authorizing":
            if payload.get("idTokenInfo", {}).get("status") != "Accepted":
                self._end_transaction(now)
                return
            self._tx_state = "charging"
            self.enqueue(
                "TransactionEvent",
                self._transaction_event("Started", "Authorized", "Transaction.Begin"),
            )
            profile = self.ctx.profile
            self.arm("meter", profile.meter_interval, now)
            self.arm("tx_stop", profile.transaction_duration, now)
        elif action == "TransactionEvent" and self._tx_state == "stopping":
            self._end_transaction(now)

    def on_error(self, action: str, code: str, now: float) -> None:
        if (action == "Authorize" and self._tx_state == "authorizing") or (
            action == "TransactionEvent" and self._tx_state == "stopping"
        ):
            self._end_transaction(now)

    def on_call(self, action: str, payload: JsonObject, now: float) -> JsonObject | None:
        if action == "TriggerMessage":
            return {"status": self._trigger(payload.get("requestedMessage"))}
        return super().on_call(action, payload, now)

    def _trigger(self, message: Any) -> str:
        if message == "Heartbeat":
            self.enqueue("Heartbeat", {})
        elif message == "BootNotification":
            self.enqueue("BootNotification", self.boot_payload(False))
        elif message == "StatusNotification":
            for evse, status in self._idle_status.items():
                self._status(evse, status)
        elif message == "MeterValues":
            self.enqueue(
                "MeterValues",
                {"evseId": self._tx_unit, "meterValue": self._meter_value("Trigger")},
            )
        else:
            return "NotImplemented"
        return "Accepted"
