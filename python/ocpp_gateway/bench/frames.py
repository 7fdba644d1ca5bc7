"""Canned OCPP-J frames for the capacity benchmarks: realistic requests and valid responses."""

from __future__ import annotations

from typing import Final

import orjson

__all__ = ["CallTemplate", "answered_unique_id", "call_result"]


V16: Final = "ocpp1.6"
V201: Final = "ocpp2.0.1"

_TS: Final = "2025-03-14T09:26:53.589Z"

_SAMPLES_16: Final = [
    {
        "value": "12345.6",
        "context": "Sample.Periodic",
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
        "unit": "Wh",
    },
    {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
    {"value": "230.1", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
    {"value": "31.4", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
    {"value": "54", "measurand": "SoC", "unit": "Percent"},
]

_SAMPLES_201: Final = [
    {
        "value": 12345.6,
        "context": "Sample.Periodic",
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
        "unitOfMeasure": {"unit": "Wh"},
    },
    {"value": 7.2, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
    {"value": 230.1, "measurand": "Voltage", "phase": "L1-N", "unitOfMeasure": {"unit": "V"}},
    {"value": 31.4, "measurand": "Current.Import", "phase": "L1", "unitOfMeasure": {"unit": "A"}},
    {"value": 54, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}},
]

# Requests a charge point sends, by version and action: the payloads a real charger sends.
REQUESTS: Final[dict[str, dict[str, object]]] = {
    V16: {
        "BootNotification": {
            "chargePointVendor": "Acme Charging",
            "chargePointModel": "AC22-T2",
            "chargePointSerialNumber": "SN-2024-000123",
            "chargeBoxSerialNumber": "CB-000123",
            "firmwareVersion": "4.2.17",
            "meterType": "EM340",
        },
        "Heartbeat": {},
        "StatusNotification": {
            "connectorId": 1,
            "errorCode": "NoError",
            "status": "Charging",
            "timestamp": _TS,
        },
        "Authorize": {"idTag": "04A1B2C3D4E5F6"},
        "StartTransaction": {
            "connectorId": 1,
            "idTag": "04A1B2C3D4E5F6",
            "meterStart": 1234560,
            "timestamp": _TS,
        },
        "MeterValues": {
            "connectorId": 1,
            "transactionId": 4711,
            "meterValue": [{"timestamp": _TS, "sampledValue": _SAMPLES_16}],
        },
        "StopTransaction": {
            "transactionId": 4711,
            "idTag": "04A1B2C3D4E5F6",
            "meterStop": 1256780,
            "timestamp": _TS,
            "reason": "Local",
        },
    },
    V201: {
        "BootNotification": {
            "chargingStation": {
                "model": "DC150-CCS",
                "vendorName": "Acme Charging",
                "serialNumber": "SN-2024-000456",
                "firmwareVersion": "2.0.9",
            },
            "reason": "PowerUp",
        },
        "Heartbeat": {},
        "StatusNotification": {
            "timestamp": _TS,
            "connectorStatus": "Occupied",
            "evseId": 1,
            "connectorId": 1,
        },
        "Authorize": {"idToken": {"idToken": "04A1B2C3D4E5F6", "type": "ISO14443"}},
        "TransactionEvent": {
            "eventType": "Updated",
            "timestamp": _TS,
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 7,
            "transactionInfo": {"transactionId": "tx-000000004711", "chargingState": "Charging"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": _TS, "sampledValue": _SAMPLES_201}],
        },
        "MeterValues": {
            "evseId": 1,
            "meterValue": [{"timestamp": _TS, "sampledValue": _SAMPLES_201}],
        },
    },
}

# Responses the test CSMS gives, by version and action; every one valid against its schema.
RESPONSES: Final[dict[str, dict[str, object]]] = {
    V16: {
        "BootNotification": {"status": "Accepted", "currentTime": _TS, "interval": 300},
        "Heartbeat": {"currentTime": _TS},
        "StatusNotification": {},
        "Authorize": {"idTagInfo": {"status": "Accepted"}},
        "StartTransaction": {"transactionId": 4711, "idTagInfo": {"status": "Accepted"}},
        "MeterValues": {},
        "StopTransaction": {"idTagInfo": {"status": "Accepted"}},
        "DataTransfer": {"status": "Accepted"},
        "DiagnosticsStatusNotification": {},
        "FirmwareStatusNotification": {},
    },
    V201: {
        "BootNotification": {"currentTime": _TS, "interval": 300, "status": "Accepted"},
        "Heartbeat": {"currentTime": _TS},
        "StatusNotification": {},
        "Authorize": {"idTokenInfo": {"status": "Accepted"}},
        "TransactionEvent": {},
        "MeterValues": {},
        "NotifyEvent": {},
        "NotifyReport": {},
        "DataTransfer": {"status": "Accepted"},
        "SecurityEventNotification": {},
        "FirmwareStatusNotification": {},
        "LogStatusNotification": {},
    },
}

# The mix of a busy charge point while charging: what a throughput run sends, in order.
MIX: Final[dict[str, tuple[str, ...]]] = {
    V16: (
        "Heartbeat",
        "MeterValues",
        "StatusNotification",
        "MeterValues",
        "Authorize",
        "MeterValues",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
        "MeterValues",
    ),
    V201: (
        "Heartbeat",
        "TransactionEvent",
        "StatusNotification",
        "MeterValues",
        "Authorize",
        "TransactionEvent",
        "TransactionEvent",
        "MeterValues",
        "TransactionEvent",
        "TransactionEvent",
    ),
}

_ENCODED_REQUESTS: Final = {
    version: {action: orjson.dumps(payload) for action, payload in actions.items()}
    for version, actions in REQUESTS.items()
}
_ENCODED_RESPONSES: Final = {
    version: {action: orjson.dumps(payload) for action, payload in actions.items()}
    for version, actions in RESPONSES.items()
}


class CallTemplate:
    """Builds CALL frames of one action quickly: only the UniqueId changes between calls."""

    __slots__ = ("_head", "_tail", "action")

    def __init__(self, version: str, action: str) -> None:
        """Args:
            version: "ocpp1.6" or "ocpp2.0.1".
            action: an action in `REQUESTS[version]`.

        Raises:
            KeyError: no canned request for that version and action.
        """
        self.action = action
        self._head = b'[2,"'
        self._tail = b'","' + action.encode() + b'",' + _ENCODED_REQUESTS[version][action] + b"]"

    def frame(self, unique_id: bytes) -> bytes:
        """The CALL frame with this UniqueId (ASCII, no quotes).

        Args:
            unique_id: the UniqueId to use.

        Returns:
            The frame as UTF-8 bytes.
        """
        return self._head + unique_id + self._tail


def call_result(version: str, frame: bytes) -> bytes | None:
    """Answer a CALL frame the way a well-behaved CSMS would.

    Args:
        version: the subprotocol of the connection.
        frame: a frame received from the charge point side.

    Returns:
        The CALLRESULT frame, a CALLERROR frame for an action without a canned answer, or None
        when the frame is not a CALL (results and errors are not answered).
    """
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, list) or len(message) != 4 or message[0] != 2:
        return None
    unique_id = orjson.dumps(message[1])
    payload = _ENCODED_RESPONSES.get(version, {}).get(message[2])
    if payload is None:
        return b"[4," + unique_id + b',"NotImplemented","no canned answer",{}]'
    return b"[3," + unique_id + b"," + payload + b"]"


def answered_unique_id(frame: bytes) -> tuple[int, bytes]:
    """The MessageTypeId and UniqueId of a result or error frame, parsed cheaply.

    Args:
        frame: a CALLRESULT or CALLERROR frame (any JSON spacing).

    Returns:
        (message type id, UniqueId bytes); (0, b"") when the frame cannot be read.
    """
    if frame.startswith((b'[3,"', b'[4,"')):
        end = frame.find(b'"', 4)
        if end > 0:
            return frame[1] - 0x30, frame[4:end]
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return 0, b""
    if isinstance(message, list) and len(message) >= 2 and isinstance(message[1], str):
        kind = message[0] if isinstance(message[0], int) else 0
        return kind, message[1].encode()
    return 0, b""
