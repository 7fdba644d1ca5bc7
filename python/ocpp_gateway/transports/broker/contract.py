"""The broker wire contract: metadata names, statuses, identity tokens and both brokers' envelopes.

Everything a gateway node and a backend service must spell the same way (docs/brokers.md):
the names of the metadata beside each frame (NATS headers, Redis stream fields), the command
outcomes, how a charge point id or a node id becomes a subject token or key part, and the
encoders and decoders of the JSON envelopes and short messages the two brokers carry (Redis
answers, commands and outcomes; probes and ownership announcements on both). Pure code: no
client library, no I/O. `ocpp_gateway.backend` takes its names from here only.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from ocpp_gateway.schemas import TRANSACTION_ACTIONS
from ocpp_gateway.transports.base import Holder

__all__ = [
    "DEFAULT_TRANSACTION_ACTIONS",
    "H_ACTION",
    "H_CHARGE_POINT",
    "H_COMMAND_ID",
    "H_DEDUP",
    "H_EPOCH",
    "H_MESSAGE_ID",
    "H_MESSAGE_TYPE",
    "H_NODE",
    "H_PROTOCOL",
    "H_RECEIVED",
    "H_REPLY",
    "H_STATUS",
    "NATS_EXPECTED_STREAM",
    "NATS_MSG_ID",
    "OUTCOME_FIELDS",
    "PROBE_ANSWERS",
    "VERSION_TOKENS",
    "CommandEnvelope",
    "CommandStatus",
    "ProbeRequest",
    "answer_status",
    "decode_nats_probe",
    "decode_owner_change",
    "decode_owner_node",
    "decode_probe_reply",
    "decode_redis_answer",
    "decode_redis_command",
    "decode_redis_outcome",
    "default_node_id",
    "encode_nats_probe",
    "encode_node_value",
    "encode_owner_change",
    "encode_owner_value",
    "encode_probe_reply",
    "encode_redis_answer",
    "encode_redis_command",
    "encode_redis_outcome",
    "encode_redis_probe",
    "identity_token",
    "nats_outcome_headers",
    "parse_command",
    "received_timestamp",
]

# Names of the metadata beside each frame (NATS headers; Redis stream fields and hash keys).
H_CHARGE_POINT = "Ocpp-Cp"
H_PROTOCOL = "Ocpp-Proto"
H_MESSAGE_TYPE = "Ocpp-Type"
H_MESSAGE_ID = "Ocpp-Msg-Id"
H_ACTION = "Ocpp-Action"
H_NODE = "Ocpp-Node"
H_EPOCH = "Ocpp-Epoch"
H_RECEIVED = "Ocpp-Rx-Ts"
H_REPLY = "Ocpp-Reply"
H_STATUS = "Ocpp-Status"
H_COMMAND_ID = "Ocpp-Cmd-Id"
#: The dedup key's field on Redis (`<node>:<epoch>:<n>`).
H_DEDUP = "Ocpp-Dedup"
#: The dedup key's header on NATS: JetStream drops a repeat within `duplicate_window`.
NATS_MSG_ID = "Nats-Msg-Id"
#: The stream a NATS publish is meant for: JetStream refuses it if the subject lands elsewhere.
NATS_EXPECTED_STREAM = "Nats-Expected-Stream"

#: The metadata a command outcome echoes back (missing or empty: unknown).
OUTCOME_FIELDS = (H_CHARGE_POINT, H_EPOCH, H_MESSAGE_ID, H_ACTION, H_COMMAND_ID)

# Subject / key token of each OCPP version (subject tokens cannot hold dots).
VERSION_TOKENS = {"ocpp1.6": "16", "ocpp2.0.1": "201", "ocpp2.1": "21"}

# DESIGN.md "Rules that keep data safe": the messages a charger queues and retries itself.
# MeterValues counts only when it carries a transactionId (checked on the bytes).
DEFAULT_TRANSACTION_ACTIONS = tuple(sorted(TRANSACTION_ACTIONS))

_TOKEN_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_BYTE_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class CommandStatus(StrEnum):
    """How a backend's command to a charge point ended (the `Ocpp-Status` of its answer)."""

    OK = "ok"  # the charge point answered with a CALLRESULT (the body)
    CALLERROR = "callerror"  # the charge point answered with a CALLERROR (the body)
    OFFLINE = "offline"  # no live connection: never sent; safe to retry later
    BUSY = "busy"  # the charge point's command queue is full: never sent; retry later
    TIMEOUT = "timeout"  # sent, no answer in time (or the connection dropped): outcome unknown
    REJECTED = "rejected"  # the gateway refused it (validation); body: the gateway's CALLERROR


def answer_status(message_type: int, from_gateway: bool) -> CommandStatus:
    """The outcome of a command answered by `message_type`.

    Args:
        message_type: 3 (CALLRESULT), 4 (CALLERROR) or 5 (CALLRESULTERROR).
        from_gateway: the gateway answered the command itself (validation refused it, a plugin
            answered it): it never reached the charge point.

    Returns:
        OK for a CALLRESULT; otherwise REJECTED when the gateway answered, CALLERROR when the
        charge point did.
    """
    if message_type == 3:
        return CommandStatus.OK
    return CommandStatus.REJECTED if from_gateway else CommandStatus.CALLERROR


def identity_token(charge_point_id: str) -> str:
    """The charge point id (or node id) as one subject token / key part: `[A-Za-z0-9_-]` kept,
    every other byte of its UTF-8 form written `=HH` (upper-case hex). Reversible and
    collision-free.

    Args:
        charge_point_id: the identity from the connection path (or a node id).

    Returns:
        The token.
    """
    if _TOKEN_SAFE.fullmatch(charge_point_id):
        return charge_point_id
    return "".join(
        chr(byte) if byte in _BYTE_SAFE else f"={byte:02X}"
        for byte in charge_point_id.encode("utf-8")
    )


def default_node_id() -> str:
    """Returns: this process's node id when none is configured: host name and pid, as a token."""
    return identity_token(f"{socket.gethostname()}-{os.getpid()}")


@functools.lru_cache(maxsize=1)
def _second_text(second: int) -> str:
    """The date and time of a whole second, RFC 3339 UTC without the fraction."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def received_timestamp() -> str:
    """Returns: now, RFC 3339 UTC with microseconds (the `Ocpp-Rx-Ts` value).

    One per frame on the broker path: the date and time of the current second are formatted
    once a second, the microseconds every time (a datetime per frame is measurably slower).
    """
    now = time.time()
    second = int(now)
    return f"{_second_text(second)}.{int((now - second) * 1e6):06d}Z"


def parse_command(frame: bytes) -> tuple[str, str] | None:
    """The UniqueId and action of a backend's command frame.

    Args:
        frame: the bytes a backend sent as a command.

    Returns:
        (unique_id, action), or None when it is not a CALL.
    """
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if (
        isinstance(message, list)
        and len(message) == 4
        and message[0] == 2
        and isinstance(message[1], str)
        and isinstance(message[2], str)
    ):
        return message[1], message[2]
    return None


# -- ownership --------------------------------------------------------------------------------


def encode_owner_value(node: str, version: str, since: str) -> bytes:
    """Args:
        node: the claiming node's id (a token).
        version: the connection's OCPP version.
        since: when it was claimed (`received_timestamp`).

    Returns:
        The NATS ownership entry's value, `{"node", "proto", "since"}`.
    """
    return orjson.dumps({"node": node, "proto": version, "since": since})


def decode_owner_node(value: bytes | None) -> str:
    """Args:
        value: a NATS ownership entry's value.

    Returns:
        The node it names, "" when it names none (or is not the gateway's JSON).
    """
    try:
        entry = orjson.loads(value or b"{}")
    except orjson.JSONDecodeError:
        return ""
    return str(entry.get("node") or "") if isinstance(entry, dict) else ""


def encode_node_value(node: str) -> bytes:
    """Returns: a node's liveness entry, `{"node", "ts"}` (ts: seconds since the epoch).

    Args:
        node: the node's id.
    """
    return orjson.dumps({"node": node, "ts": time.time()})


def encode_owner_change(token: str, epoch: int | str) -> str:
    """Returns: the Redis `<p>:owners` announcement of a claim, `<token> <epoch>`.

    Args:
        token: the identity token.
        epoch: the new epoch.
    """
    return f"{token} {epoch}"


def decode_owner_change(data: bytes) -> tuple[str, int] | None:
    """Args:
        data: a message of the Redis `<p>:owners` channel.

    Returns:
        (token, epoch), or None when it is not an announcement.
    """
    token, _, epoch = data.decode(errors="replace").rpartition(" ")
    try:
        return token, int(epoch)
    except ValueError:
        return None


# -- probes between gateway nodes -------------------------------------------------------------

#: A probed node's answers, as bytes on the wire; the asker maps them onto `base.Holder`.
PROBE_ANSWERS: Mapping[bytes, Holder] = {
    b"alive": "live",
    b"unresponsive": "unresponsive",
    b"gone": "free",
}


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """Another node asking whether this one still holds a connection.

    Attributes:
        charge_point_id: the identity asked about.
        epoch: the epoch of the ownership entry the asker read (text).
        ping: ping the charge point before answering.
        probe_id: the asker's id of the probe (Redis; "" on NATS, a request).
        reply: where the answer goes (Redis: the asker's probe channel; "" on NATS).
    """

    charge_point_id: str
    epoch: str
    ping: bool = True
    probe_id: str = ""
    reply: str = ""


def encode_nats_probe(charge_point_id: str, epoch: str, ping: bool) -> bytes:
    """Returns: the body of a NATS probe request, `{"cp", "epoch" (a number), "ping"}`.

    Args:
        charge_point_id: the identity asked about.
        epoch: the ownership entry's revision (decimal text).
        ping: ask for a ping of the charge point.
    """
    return orjson.dumps({"cp": charge_point_id, "epoch": int(epoch), "ping": ping})


def decode_nats_probe(data: bytes) -> ProbeRequest | None:
    """Returns: the probe of a NATS probe request's body, None when it is not one.

    Args:
        data: the request's body.
    """
    try:
        asked = orjson.loads(data)
        return ProbeRequest(str(asked["cp"]), str(asked["epoch"]), bool(asked.get("ping", True)))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def encode_redis_probe(
    probe_id: str, charge_point_id: str, epoch: str, ping: bool, reply: str
) -> bytes:
    """Returns: a probe on a node's Redis command channel, `{"probe", "cp", "epoch", "ping",
    "frame": "", "reply"}`.

    Args:
        probe_id: the asker's id of this probe (echoed in the answer).
        charge_point_id: the identity asked about.
        epoch: the ownership entry's epoch (text).
        ping: ask for a ping of the charge point.
        reply: the asker's probe channel.
    """
    return orjson.dumps(
        {
            "probe": probe_id,
            "cp": charge_point_id,
            "epoch": epoch,
            "ping": ping,
            "frame": "",
            "reply": reply,
        }
    )


def encode_probe_reply(probe_id: str, answer: bytes) -> bytes:
    """Returns: a probe's answer on the asker's Redis probe channel, `<probe id> <answer>`.

    Args:
        probe_id: the probe's id.
        answer: b"alive", b"unresponsive" or b"gone".
    """
    return probe_id.encode() + b" " + answer


def decode_probe_reply(data: bytes) -> tuple[str, bytes]:
    """Returns: (probe id, answer) of a message on a Redis probe channel.

    Args:
        data: the message.
    """
    probe_id, _, answer = data.decode(errors="replace").partition(" ")
    return probe_id, answer.encode()


# -- answers and commands ---------------------------------------------------------------------


def encode_redis_answer(charge_point_id: str, epoch: int | str, frame: bytes) -> bytes:
    """Returns: the envelope a backend publishes on `Ocpp-Reply`, `{"cp", "epoch", "frame"}`.

    Args:
        charge_point_id: `Ocpp-Cp` of the CALL answered.
        epoch: its `Ocpp-Epoch`.
        frame: the answer frame (UTF-8 JSON text).
    """
    return orjson.dumps({"cp": charge_point_id, "epoch": epoch, "frame": frame.decode()})


def decode_redis_answer(data: bytes) -> tuple[str, str, bytes] | None:
    """Returns: (charge point id, epoch as text, frame) of a Redis answer envelope (one per
    answer on the hot path: a plain tuple), None when it is not one.

    Args:
        data: the published message.
    """
    try:
        envelope = orjson.loads(data)
        return str(envelope["cp"]), str(envelope["epoch"]), str(envelope["frame"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class CommandEnvelope:
    """A backend's command to a charge point, as published on a node's Redis command channel.

    Attributes:
        charge_point_id: the identity it is addressed to.
        epoch: the epoch it is meant for (text).
        frame: the CALL's bytes.
        reply: the list key the outcome is pushed to.
        command_id: the backend's own id for it.
    """

    charge_point_id: str
    epoch: str
    frame: bytes
    reply: str
    command_id: str


def encode_redis_command(
    charge_point_id: str, epoch: str, frame: bytes, reply: str, command_id: str, action: str = ""
) -> bytes:
    """Returns: a command envelope, `{"cp", "epoch", "frame", "reply", "cmd_id"}` (and, when
    given, the action under `Ocpp-Action`, for people reading the channel).

    Args:
        charge_point_id: the identity.
        epoch: the owner entry's epoch.
        frame: the CALL (UTF-8 JSON text).
        reply: a fresh list key for the outcome.
        command_id: the backend's id for it.
        action: the CALL's action.
    """
    envelope: dict[str, Any] = {
        "cp": charge_point_id,
        "epoch": epoch,
        "frame": frame.decode(),
        "reply": reply,
        "cmd_id": command_id,
    }
    if action:
        envelope[H_ACTION] = action
    return orjson.dumps(envelope)


def decode_redis_command(data: bytes) -> CommandEnvelope | ProbeRequest | None:
    """Returns: what a message on a node's Redis command channel carries: a command, a probe
    from another node, or None when it is neither.

    Args:
        data: the published message.
    """
    try:
        envelope = orjson.loads(data)
        charge_point_id = str(envelope["cp"])
        epoch = str(envelope["epoch"])
        frame = str(envelope["frame"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if envelope.get("probe"):
        return ProbeRequest(
            charge_point_id,
            epoch,
            bool(envelope.get("ping", True)),
            str(envelope["probe"]),
            str(envelope.get("reply") or ""),
        )
    return CommandEnvelope(
        charge_point_id,
        epoch,
        frame,
        str(envelope.get("reply") or ""),
        str(envelope.get("cmd_id") or ""),
    )


def encode_redis_outcome(
    status: CommandStatus, frame: bytes, fields: Mapping[str, str], node: str
) -> bytes:
    """Returns: a command's outcome pushed onto its Redis reply list, `{"status", "frame",
    "cp", "epoch", "msg_id", "action", "cmd_id", "node"}`.

    Args:
        status: the outcome.
        frame: the charge point's (or the gateway's rejecting) frame, or empty.
        fields: the `OUTCOME_FIELDS` known of the command.
        node: the answering node's id.
    """
    return orjson.dumps(
        {
            "status": status.value,
            "frame": frame.decode(),
            "cp": fields.get(H_CHARGE_POINT, ""),
            "epoch": fields.get(H_EPOCH, ""),
            "msg_id": fields.get(H_MESSAGE_ID, ""),
            "action": fields.get(H_ACTION, ""),
            "cmd_id": fields.get(H_COMMAND_ID, ""),
            "node": node,
        }
    )


def decode_redis_outcome(data: bytes | str) -> tuple[CommandStatus, bytes] | None:
    """Returns: (status, frame) of an outcome popped from a Redis reply list, None when it is
    not one.

    Args:
        data: the list element.
    """
    try:
        result = orjson.loads(data)
        return CommandStatus(result["status"]), str(result.get("frame") or "").encode()
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError):
        return None


def nats_outcome_headers(
    status: CommandStatus, fields: Mapping[str, str], node: str
) -> dict[str, str]:
    """Returns: the headers of a command's outcome on NATS: the non-empty `OUTCOME_FIELDS`,
    then `Ocpp-Status` and `Ocpp-Node`.

    Args:
        status: the outcome.
        fields: what is known of the command (a refusal echoes the command's own headers).
        node: the answering node's id.
    """
    out = {key: fields[key] for key in OUTCOME_FIELDS if fields.get(key)}
    out[H_STATUS] = status.value
    out[H_NODE] = node
    return out
