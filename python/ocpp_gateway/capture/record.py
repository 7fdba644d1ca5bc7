"""Open OCPP Trace v1.1 records from captured frames: plain functions, no I/O.

A captured frame is an `Entry`, the tuple the relay's hook appends (cheap to build on the hot
path): (sequence number, wall-clock time, direction, the frame's bytes, the Session's verdict,
the backend's transport name, the connection's `TraceIdentity`). `records` turns one entry
into its records: the frame itself, then what the gateway sent instead when it did not forward
it (its CALLERROR back to the sender, its replacement to the other side), each a record of its
own with `meta.source = "gateway"`.

Record fields follow the format (schemaVersion "1.1", timestamp, ocppVersion, transport
"json", chargePointId, connectorId when the payload names one, direction, messageType,
messageId, action, payload, raw, error) and the gateway's own fields live under `meta`:

- `seq`: the frame's number in this charge point's capture (the API's pagination cursor);
- `epoch`: the connection's epoch (the broker's ownership revision on a broker link, else
  the connection's start, Unix seconds);
- `source`: who put the frame on the wire: "charge_point", "backend" or "gateway";
- `verdict`: "forwarded", "relaxed" (with `rule`, the model relaxation that let it pass),
  "answered" (with `errorCode`, the CALLERROR the gateway sent back), "replaced" (a result
  that failed its schema, replaced by the gateway's CALLERROR), "dropped" (with `reason`),
  or "sent" for the gateway's own frames (with `reason` when it answered for a plugin,
  "plugin", for the rate limiter, "rate_limited", or called the charge point itself,
  "admin_call"); `observed` holds the error code of a violation forwarded under an observe
  policy. The verdict is the Session's (validation): a CALL a plugin or the rate limiter then
  answered is "forwarded", followed by the gateway's answer;
- `backend`: the transport name of the backend the frame went to or came from;
- `worker`: the gateway worker that relayed it;
- `messageTypeId`: only for 2.1's CALLRESULTERROR (5, recorded as CALLERROR) and SEND (6,
  recorded as CALL), whose kinds the format does not name;
- `redacted`: the payload paths hidden by redaction; `raw` is then the redacted frame
  re-encoded, not the bytes on the wire (every other record's `raw` is those bytes);
- `malformed`: the frame is not an OCPP-J message (not JSON, not an array, ...); it is
  recorded as a CALL with the action "" so that its bytes stay in the trace;
- `rawBase64`: the bytes, when they are not valid UTF-8 (`raw` then holds a lossy decoding).
"""

from __future__ import annotations

import base64
import datetime
from typing import Any, Protocol

import orjson

from ocpp_gateway.capture.redact import Redactor

__all__ = [
    "SCHEMA_VERSION",
    "Entry",
    "GatewaySent",
    "Judged",
    "TraceIdentity",
    "format_version",
    "records",
    "timestamp",
    "verdict_meta",
]

SCHEMA_VERSION = "1.1"
_DIRECTIONS = {"cp_to_csms": "cp-to-csms", "csms_to_cp": "csms-to-cp"}
_OPPOSITE = {"cp_to_csms": "csms-to-cp", "csms_to_cp": "cp-to-csms"}
_SOURCES = {"cp_to_csms": "charge_point", "csms_to_cp": "backend"}
_TYPES = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR", 5: "CALLERROR", 6: "CALL"}


class Judged(Protocol):
    """What a record needs of the Session's verdict (`ocpp_gateway._core.Verdict`)."""

    @property
    def forward(self) -> bool: ...
    @property
    def reply(self) -> bytes | None: ...
    @property
    def substitute(self) -> bytes | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def relaxed(self) -> str | None: ...
    @property
    def observed(self) -> bool: ...
    @property
    def drop_reason(self) -> str | None: ...
    @property
    def action(self) -> str | None: ...


class TraceIdentity:
    """The fields every record of one captured connection shares.

    Args:
        charge_point_id: the identity.
        version: the subprotocol ("ocpp1.6", "ocpp2.0.1", "ocpp2.1").
        epoch: the connection's epoch (see the module docstring).
        worker: the gateway worker id.
    """

    __slots__ = ("charge_point_id", "epoch", "ocpp_version", "worker")

    def __init__(self, charge_point_id: str, version: str, epoch: float | int, worker: int) -> None:
        self.charge_point_id = charge_point_id
        self.ocpp_version = format_version(version)
        self.epoch = epoch
        self.worker = worker


class GatewaySent:
    """The verdict of a frame the gateway sent itself (a plugin's answer, the rate limiter's,
    an admin API call): recorded with `meta.source = "gateway"` and this reason.

    Args:
        action: the action of the CALL (or of the call the frame answers).
        reason: "plugin", "rate_limited", "admin_call".
    """

    __slots__ = ("action", "reason")

    forward = True
    reply = None
    substitute = None
    error_code = None
    relaxed = None
    observed = False
    drop_reason = None

    def __init__(self, action: str | None, reason: str) -> None:
        self.action = action
        self.reason = reason


# (seq, time.time(), "cp_to_csms" | "csms_to_cp", frame bytes, verdict, backend, identity)
Entry = tuple[int, float, str, bytes, Judged, str, TraceIdentity]


def format_version(subprotocol: str) -> str:
    """Args:
        subprotocol: "ocpp1.6", "ocpp2.0.1", ...

    Returns:
        The format's spelling: "1.6", "2.0.1", ...
    """
    return subprotocol.removeprefix("ocpp")


def timestamp(moment: float) -> str:
    """Args:
        moment: Unix seconds.

    Returns:
        ISO 8601 in UTC with milliseconds ("2026-12-07T08:00:00.123Z").
    """
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def verdict_meta(verdict: Judged) -> dict[str, Any]:
    """The gateway's verdict on a frame, as record metadata.

    Args:
        verdict: the Session's verdict.

    Returns:
        {"verdict": ...} with `rule`, `errorCode`, `reason` or `observed` where they apply.
    """
    if verdict.forward:
        meta: dict[str, Any] = {"verdict": "forwarded"}
        if verdict.relaxed is not None:
            meta = {"verdict": "relaxed", "rule": verdict.relaxed}
        if verdict.observed:
            meta["observed"] = verdict.error_code
        return meta
    if verdict.reply is not None:
        return {"verdict": "answered", "errorCode": verdict.error_code}
    if verdict.substitute is not None:
        return {"verdict": "replaced", "errorCode": verdict.error_code}
    return {"verdict": "dropped", "reason": verdict.drop_reason}


def records(entry: Entry, redactor: Redactor | None) -> list[dict[str, Any]]:
    """The trace records of one captured frame (the frame, then the gateway's own frames that
    took its place).

    Args:
        entry: the captured frame.
        redactor: the redaction rules, or None for none.

    Returns:
        One to three records, in wire order.
    """
    seq, moment, direction, data, verdict, backend, ident = entry
    stamp = timestamp(moment)
    if isinstance(verdict, GatewaySent):
        meta: dict[str, Any] = {"verdict": "sent", "reason": verdict.reason}
        source = "gateway"
    else:
        meta = verdict_meta(verdict)
        source = _SOURCES[direction]
    meta.update(seq=seq, epoch=ident.epoch, source=source, backend=backend)
    meta["worker"] = ident.worker
    found = [_record(data, stamp, _DIRECTIONS[direction], verdict.action, ident, meta, redactor)]
    for frame, towards in ((verdict.reply, _OPPOSITE), (verdict.substitute, _DIRECTIONS)):
        if frame is not None:
            own = {"verdict": "sent", "seq": seq, "epoch": ident.epoch, "source": "gateway"}
            own.update(backend=backend, worker=ident.worker)
            found.append(
                _record(frame, stamp, towards[direction], verdict.action, ident, own, redactor)
            )
    return found


def _record(
    data: bytes,
    stamp: str,
    direction: str,
    action: str | None,
    ident: TraceIdentity,
    meta: dict[str, Any],
    redactor: Redactor | None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "timestamp": stamp,
        "ocppVersion": ident.ocpp_version,
        "transport": "json",
        "chargePointId": ident.charge_point_id,
    }
    try:
        raw = data.decode()
    except UnicodeDecodeError:
        raw = data.decode(errors="replace")
        meta["rawBase64"] = base64.b64encode(data).decode()
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        frame = None
    kind = _kind(frame)
    if kind is None:
        record.update(direction=direction, messageType="CALL", action="", raw=raw)
        meta["malformed"] = True
        record["meta"] = meta
        return record
    assert isinstance(frame, list)
    type_id = frame[0]
    record["direction"] = direction
    record["messageType"] = _TYPES[type_id]
    record["messageId"] = frame[1]
    if type_id in (2, 6):
        action = frame[2]
        payload = frame[3]
    else:
        payload = frame[2] if type_id == 3 else None
    if type_id in (5, 6):
        meta["messageTypeId"] = type_id
    if action is not None:
        record["action"] = action
    if payload is not None:
        connector = _connector(payload)
        if connector is not None:
            record["connectorId"] = connector
        if redactor is not None:
            hidden = redactor.apply(action, 3 if type_id == 3 else 2, payload)
            if hidden:
                meta["redacted"] = hidden
                raw = orjson.dumps(frame).decode()
        record["payload"] = payload
    if type_id in (4, 5):
        record["error"] = _error(frame)
    record["raw"] = raw
    record["meta"] = meta
    return record


def _kind(frame: object) -> int | None:
    """The message type id of a well-formed frame, None for anything else."""
    if not isinstance(frame, list) or len(frame) < 3:
        return None
    type_id = frame[0]
    if type(type_id) is not int or type_id not in _TYPES or not isinstance(frame[1], str):
        return None
    if type_id == 3:
        return type_id if len(frame) == 3 else None
    length = 4 if type_id in (2, 6) else 5
    return type_id if len(frame) == length and isinstance(frame[2], str) else None


def _connector(payload: object) -> int | None:
    if not isinstance(payload, dict):
        return None
    connector = payload.get("connectorId")
    if connector is None:
        evse = payload.get("evse")
        connector = evse.get("connectorId") if isinstance(evse, dict) else None
    if type(connector) is int and connector >= 0:
        return connector
    return None


def _error(frame: list[Any]) -> dict[str, Any]:
    error: dict[str, Any] = {"code": frame[2]}
    if isinstance(frame[3], str):
        error["description"] = frame[3]
    error["details"] = frame[4]
    return error
