"""The broker protocol as plain decisions: claims, holders, command intake, probes, frame metadata.

What a broker transport decides is the same on every broker, and none of it needs the broker:
each function here takes what was read (an ownership entry, a probe's answer, a command, the
links of this node) and returns what to do. The transport (`transport.py`) does the I/O
around them with a broker client; the tests drive them by tables, without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ocpp_gateway.schemas import is_transaction_message
from ocpp_gateway.transports.base import Holder
from ocpp_gateway.transports.broker.contract import (
    H_ACTION,
    H_CHARGE_POINT,
    H_COMMAND_ID,
    H_EPOCH,
    H_MESSAGE_ID,
    H_MESSAGE_TYPE,
    H_NODE,
    H_PROTOCOL,
    H_RECEIVED,
    H_REPLY,
    PROBE_ANSWERS,
    VERSION_TOKENS,
    CommandStatus,
    parse_command,
    received_timestamp,
)
from ocpp_gateway.transports.broker.link import BrokerLink, Command, LinkTable

__all__ = [
    "ClaimOutcome",
    "Deliver",
    "Refuse",
    "claim_outcome",
    "frame_metadata",
    "holder_state",
    "holder_to_ask",
    "link_version",
    "ping_answer",
    "probe_answer",
    "take_command",
    "to_transaction_stream",
]

#: How a claim ended: "owner" (the link holds the identity with the claim's epoch) or
#: "overtaken" (a newer claim came meanwhile, or the link was lost while claiming).
ClaimOutcome = Literal["owner", "overtaken"]


def link_version(versions: tuple[str, ...]) -> str | None:
    """The version a broker link takes: a backend on a broker is not asked, so the first the
    charge point offered that has a subject token.

    Args:
        versions: the versions offered, preferred first.

    Returns:
        The version, or None when none has a token.
    """
    return next((version for version in versions if version in VERSION_TOKENS), None)


def claim_outcome(link: BrokerLink, epoch: int) -> ClaimOutcome:
    """Whether a link's claim stands once the broker returned its epoch.

    Args:
        link: the claiming link (`seen_revision`: the newest revision announced meanwhile).
        epoch: the epoch of the claim.

    Returns:
        "owner", or "overtaken" when a newer claim was announced while this one ran, or the
        link ended meanwhile (the broker connection was lost).
    """
    if link.seen_revision > epoch or link.ended:
        return "overtaken"
    return "owner"


def holder_to_ask(owner: tuple[str, str] | None, node_id: str) -> tuple[str, str] | None:
    """Whom to ask before a newcomer may displace a connection of its identity.

    Args:
        owner: (node, epoch) of the identity's ownership entry, None when there is none.
        node_id: this node's id.

    Returns:
        (node, epoch) of the holder to probe, or None when the identity is free elsewhere
        (no entry, or this node's own: the admission on this node decides alone). The holder
        is always asked when it is another node: an entry can outlive its connection (left
        while the broker was away), and only the holding node knows.
    """
    if owner is None or owner[0] == node_id:
        return None
    return owner


def holder_state(listening: bool, answer: bytes | None) -> Holder:
    """The holder's state from the probe's outcome.

    Args:
        listening: someone listens for the holding node (NATS: a responder; Redis: a
            subscriber); nobody means that node is gone, with its sockets.
        answer: its answer (`PROBE_ANSWERS`), None when none came in time.

    Returns:
        "free" when nobody listens or the holder says "gone"; "live" when it says "alive", gives
        no answer in time (a busy holder keeps its charge point: the newcomer is refused and
        retries) or an answer not in the contract; "unresponsive" when its ping went unanswered.
    """
    if not listening:
        return "free"
    if answer is None:
        return "live"
    return PROBE_ANSWERS.get(answer, "live")


def probe_answer(links: LinkTable, charge_point_id: str, epoch: str, ping: bool) -> bytes | None:
    """This node's answer to another node asking whether it still holds a connection.

    Args:
        links: this node's links.
        charge_point_id: the identity asked about.
        epoch: the epoch of the ownership entry the asker read.
        ping: the asker wants the charge point pinged (the "ping" takeover rule).

    Returns:
        b"gone" (no live link of that epoch here: a stale entry), b"alive" (held, no ping
        asked), or None: ping the charge point, then answer `ping_answer(answered)`.
    """
    if links.live(charge_point_id, epoch) is None:
        return b"gone"
    if not ping:
        return b"alive"
    return None


def ping_answer(answered: bool) -> bytes:
    """Returns: the probe's answer after a ping: b"alive" or b"unresponsive".

    Args:
        answered: the charge point answered the ping in time.
    """
    return b"alive" if answered else b"unresponsive"


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand the command to its link (`BrokerLink.offer_command`).

    Attributes:
        link: the live link of the command's charge point and epoch.
        command: the command.
    """

    link: BrokerLink
    command: Command


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer the command at once; it never reaches a charge point.

    Attributes:
        status: REJECTED (not a CALL) or OFFLINE (no live link of that epoch here).
        fields: the metadata the outcome echoes (`contract.OUTCOME_FIELDS` names).
    """

    status: CommandStatus
    fields: Mapping[str, str]


def take_command(
    links: LinkTable,
    frame: bytes,
    reply: str,
    charge_point_id: str,
    epoch: str,
    command_id: str,
    echo: Mapping[str, str] | None = None,
) -> Deliver | Refuse:
    """What to do with a backend's command.

    Args:
        links: this node's links.
        frame: the command's bytes.
        reply: where its outcome goes.
        charge_point_id: the identity it is addressed to.
        epoch: the epoch it carries.
        command_id: the backend's own id for it.
        echo: the metadata a refusal answers with (NATS: the command's own headers); None:
            the charge point and the epoch, and, once the frame parsed, its UniqueId, action
            and command id.

    Returns:
        `Deliver` to the live link, or `Refuse` with REJECTED (not a CALL) or OFFLINE.
    """
    parsed = parse_command(frame)
    if parsed is None:
        fields = echo if echo is not None else {H_CHARGE_POINT: charge_point_id, H_EPOCH: epoch}
        return Refuse(CommandStatus.REJECTED, fields)
    unique_id, action = parsed
    link = links.live(charge_point_id, epoch)
    if link is None:
        if echo is None:
            echo = {
                H_CHARGE_POINT: charge_point_id,
                H_EPOCH: epoch,
                H_MESSAGE_ID: unique_id,
                H_ACTION: action,
                H_COMMAND_ID: command_id,
            }
        return Refuse(CommandStatus.OFFLINE, echo)
    return Deliver(link, Command(unique_id, action, frame, reply, command_id))


def to_transaction_stream(
    message_type: int, action: str, frame: bytes, actions: frozenset[str]
) -> bool:
    """Whether a charge point frame goes to the transaction stream.

    Args:
        message_type: 2 (CALL) or 6 (SEND: never).
        action: its action.
        frame: its bytes (MeterValues counts only with a transactionId in its payload).
        actions: the transaction-class actions (`transaction_actions`).

    Returns:
        True for a transaction-class CALL.
    """
    return message_type == 2 and is_transaction_message(action, frame, actions)


def frame_metadata(
    fields: dict[str, object],
    link: BrokerLink,
    node_id: str,
    message_type: int,
    unique_id: str,
    action: str,
    reply: str | bytes,
    dedup_field: str,
) -> dict[str, object]:
    """Write the metadata beside one charge point frame (docs/brokers.md) into `fields`: the
    `H_*` names, then the dedup key `<node>:<epoch>:<n>` under `dedup_field` (n: the frame's
    number on its connection, so that the gateway's own publish retries of one frame collapse
    and a charger's retry, a new frame or a new epoch, never does).

    Args:
        fields: what goes before them (kept first).
        link: the charge point's link (`published`: the frame's number).
        node_id: this node's id.
        message_type: 2 (CALL) or 6 (SEND).
        unique_id: the frame's UniqueId.
        action: its action.
        reply: where backends answer (`H_REPLY`).
        dedup_field: the broker's name for the dedup key.

    Returns:
        `fields`.
    """
    epoch = str(link.epoch)
    fields[H_CHARGE_POINT] = link.charge_point_id
    fields[H_PROTOCOL] = link.version
    fields[H_MESSAGE_TYPE] = str(message_type)
    fields[H_MESSAGE_ID] = unique_id
    fields[H_ACTION] = action
    fields[H_NODE] = node_id
    fields[H_EPOCH] = epoch
    fields[H_RECEIVED] = received_timestamp()
    fields[H_REPLY] = reply
    fields[dedup_field] = f"{node_id}:{epoch}:{link.published}"
    return fields
