"""OCPP 1.6J behaviour of a simulated charge point: boot, status, transactions, meter values."""

from __future__ import annotations

from typing import Any, ClassVar

from ocpp_gateway.simulate.charge_point import FleetContext
from ocpp_gateway.simulate.responses import JsonObject
from ocpp_gateway.simulate.transacting import TransactingChargePoint

# (measurand, unit, phase or None, typical value) cycled through to build N sampled values.
__all__ = ["ChargePoint16"]


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
    ("Temperature", "Celsius", None, 31.5),
    ("Frequency", "Hertz", None, 50.0),
    ("Power.Offered", "W", None, 22000.0),
)


class ChargePoint16(TransactingChargePoint):
    """A 1.6J charge point with `profile.connectors` connectors, one transaction at a time."""

    version: ClassVar[str] = "ocpp1.6"
    remote_start_action: ClassVar[str] = "RemoteStartTransaction"
    remote_stop_action: ClassVar[str] = "RemoteStopTransaction"
    meter_action: ClassVar[str] = "MeterValues"
    __slots__ = ("_tx_id",)

    def __init__(self, charge_point_id: str, ctx: FleetContext) -> None:
        super().__init__(charge_point_id, ctx)
        self._tx_id = 0  # _tx_state: idle, authorizing, starting, charging, stopping

    # ------------------------------------------------------------------ payloads

    def boot_payload(self, invalid: bool) -> JsonObject:
        profile = self.ctx.profile
        model = profile.model + "-" + "X" * 30 if invalid else profile.model
        return {
            "chargePointVendor": profile.vendor[:20],
            "chargePointModel": model if invalid else model[:20],
            "chargePointSerialNumber": self.charge_point_id[-25:],
            "firmwareVersion": "1.0.0",
        }

    def _status(self, connector: int, status: str, invalid: bool = False) -> None:
        payload = {
            "connectorId": connector,
            "errorCode": "NoError",
            "status": "Broken" if invalid else status,
            "timestamp": self.timestamp(),
        }
        self.enqueue("StatusNotification", payload, invalid)

    def _meter_values(self, context: str) -> JsonObject:
        samples = self.ctx.profile.meter_samples
        sampled = []
        for i in range(samples):
            measurand, unit, phase, typical = _SAMPLES[i % len(_SAMPLES)]
            value = float(self._meter_wh) if i == 0 else typical
            item = {
                "value": str(round(value, 1)),
                "context": context,
                "measurand": measurand,
                "unit": unit,
                "location": "Outlet",
            }
            if phase is not None:
                item["phase"] = phase
            sampled.append(item)
        payload: JsonObject = {
            "connectorId": self._tx_unit,
            "meterValue": [{"timestamp": self.timestamp(), "sampledValue": sampled}],
        }
        if self._tx_id:
            payload["transactionId"] = self._tx_id
        return payload

    def _transaction_id(self) -> int:
        return self._tx_id

    def _periodic_meter(self) -> JsonObject:
        return self._meter_values("Sample.Periodic")

    # --------------------------------------------------------------------- hooks

    def _start_transaction(self) -> None:
        if self._tx_state != "idle":
            return
        self._tx_unit = self.ctx.rng.randrange(1, self.ctx.profile.connectors + 1)
        self._tx_state = "authorizing"
        self._status(self._tx_unit, "Preparing")
        self.enqueue("Authorize", {"idTag": self.ctx.profile.id_tag[:20]})

    def _stop_transaction(self, reason: str) -> None:
        if self._tx_state != "charging":
            return
        self._tx_state = "stopping"
        self.disarm("meter")
        self.disarm("tx_stop")
        self.enqueue(
            "StopTransaction",
            {
                "transactionId": self._tx_id,
                "meterStop": self._meter_wh,
                "timestamp": self.timestamp(),
                "idTag": self.ctx.profile.id_tag[:20],
                "reason": reason,
            },
        )

    def _end_transaction(self, now: float) -> None:
        connector = self._tx_unit
        if self._tx_state in ("charging", "stopping"):
            self._status(connector, "Finishing")
        self._status(connector, "Available")
        self._idle_status[connector] = "Available"
        self._tx_state = "idle"
        self._tx_unit = 0
        self._tx_id = 0
        self.disarm("meter")
        self.disarm("tx_stop")
        self.arm("tx", self.ctx.profile.transaction_interval, now)

    def on_result(self, action: str, payload: Any, now: float) -> None:
        if action == "Authorize" and self._tx_state == "authorizing":
            accepted = payload.get("idTagInfo", {}).get("status") == "Accepted"
            if not accepted:
                self._end_transaction(now)
                return
            self._tx_state = "starting"
            self.enqueue(
                "StartTransaction",
                {
                    "connectorId": self._tx_unit,
                    "idTag": self.ctx.profile.id_tag[:20],
                    "meterStart": self._meter_wh,
                    "timestamp": self.timestamp(),
                },
            )
        elif action == "StartTransaction" and self._tx_state == "starting":
            self._tx_id = int(payload.get("transactionId", 0))
            self._tx_state = "charging"
            if payload.get("idTagInfo", {}).get("status") != "Accepted":
                self._stop_transaction("DeAuthorized")
                return
            self._status(self._tx_unit, "Charging")
            profile = self.ctx.profile
            self.arm("meter", profile.meter_interval, now)
            self.arm("tx_stop", profile.transaction_duration, now)
        elif action == "StopTransaction" and self._tx_state == "stopping":
            self._end_transaction(now)

    def on_error(self, action: str, code: str, now: float) -> None:
        if (
            (action == "Authorize" and self._tx_state == "authorizing")
            or (action == "StartTransaction" and self._tx_state == "starting")
            or (action == "StopTransaction" and self._tx_state == "stopping")
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
            for connector, status in self._idle_status.items():
                self._status(connector, status)
        elif message == "MeterValues" and self._tx_unit:
            self.enqueue("MeterValues", self._meter_values("Trigger"))
        else:
            return "NotImplemented"
        return "Accepted"
