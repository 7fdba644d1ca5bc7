"""The broker protocol by tables, without a server: claims and epochs, holders, command intake and
outcomes, probe answers, frame metadata, and the wire contract's envelopes (docs/brokers.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.transports import FramedLink, WakingLink
from ocpp_gateway.transports.broker.contract import (
    H_ACTION,
    H_CHARGE_POINT,
    H_COMMAND_ID,
    H_EPOCH,
    H_MESSAGE_ID,
    H_NODE,
    H_STATUS,
    CommandEnvelope,
    CommandStatus,
    ProbeRequest,
    answer_status,
    decode_nats_probe,
    decode_owner_change,
    decode_owner_node,
    decode_probe_reply,
    decode_redis_answer,
    decode_redis_command,
    decode_redis_outcome,
    encode_nats_probe,
    encode_owner_change,
    encode_owner_value,
    encode_probe_reply,
    encode_redis_answer,
    encode_redis_command,
    encode_redis_outcome,
    encode_redis_probe,
    identity_token,
    nats_outcome_headers,
)
from ocpp_gateway.transports.broker.link import BrokerLink, Command, LinkTable
from ocpp_gateway.transports.broker.metrics import BrokerStats
from ocpp_gateway.transports.broker.protocol import (
    Deliver,
    Refuse,
    claim_outcome,
    frame_metadata,
    holder_state,
    holder_to_ask,
    link_version,
    ping_answer,
    probe_answer,
    take_command,
    to_transaction_stream,
)

CALL = b'[2,"c1","Reset",{"type":"Soft"}]'


class Host:
    """A link's host that records what the link asks of it (the broker's side of `LinkHost`)."""

    def __init__(self, command_timeout: float = 30.0, command_queue: int = 2) -> None:
        self.stats = BrokerStats()
        self.command_timeout = command_timeout
        self.command_queue = command_queue
        self.answers: list[tuple[str, CommandStatus, bytes]] = []
        self.published: list[tuple[bytes, int, str, str]] = []
        self.released: list[BrokerLink] = []

    async def publish_frame(
        self, link: BrokerLink, frame: bytes, message_type: int, unique_id: str, action: str
    ) -> None:
        self.published.append((frame, message_type, unique_id, action))

    def answer_command(
        self, link: BrokerLink, command: Command, status: CommandStatus, frame: bytes
    ) -> None:
        self.answers.append((command.unique_id, status, frame))

    async def release(self, link: BrokerLink) -> None:
        self.released.append(link)


def _link(host: Host, charge_point_id: str = "CP1", epoch: int = 7) -> BrokerLink:
    link = BrokerLink(host, charge_point_id, identity_token(charge_point_id), "ocpp1.6")
    link.epoch = epoch
    return link


def _command(unique_id: str) -> Command:
    frame = b'[2,"%s","ClearCache",{}]' % unique_id.encode()
    return Command(unique_id, "ClearCache", frame, f"reply.{unique_id}", f"cmd-{unique_id}")


def _statuses(host: Host) -> list[tuple[str, str]]:
    return [(unique_id, status.value) for unique_id, status, _ in host.answers]


# -- ownership and epochs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("announced", "epoch", "lost", "outcome"),
    [
        (0, 5, False, "owner"),  # nothing announced meanwhile
        (5, 5, False, "owner"),  # its own claim's announcement
        (4, 5, False, "owner"),  # an older claim announced late
        (6, 5, False, "overtaken"),  # a newer claim (another node) came while claiming
        (0, 5, True, "overtaken"),  # the broker connection was lost while claiming
    ],
)
def test_claim_outcome(announced: int, epoch: int, lost: bool, outcome: str) -> None:
    host = Host()
    table = LinkTable(host.stats)
    link = _link(host, epoch=0)
    table.add(link)
    if announced:
        table.owner_changed(link.token, announced)  # still claiming: remembered, not lost
        assert not link.ended
    if lost:
        table.lose_all()
    assert claim_outcome(link, epoch) == outcome


@pytest.mark.parametrize(
    ("revision", "ends"),
    [(6, True), (100, True), (5, False), (4, False)],
)
def test_a_newer_ownership_revision_ends_older_links(revision: int, ends: bool) -> None:
    host = Host()
    table = LinkTable(host.stats)
    link = _link(host, epoch=5)
    table.add(link)
    table.owner_changed(link.token, revision)
    assert link.ended is ends
    assert link.end_reason == ("moved" if ends else "")
    assert host.stats.ownership_changes == int(ends)
    assert (table.live("CP1", "5") is None) is ends
    assert len(table) == int(not ends)


def test_two_links_of_one_identity_on_this_node_keep_only_the_newer() -> None:
    host = Host()
    table = LinkTable(host.stats)
    older, newer = _link(host, epoch=3), _link(host, epoch=0)
    table.add(older)
    table.add(newer)  # claiming
    table.owner_changed(older.token, 9)  # the newcomer's claim is announced
    newer.epoch = 9
    assert older.end_reason == "moved" and not newer.ended
    assert table.live("CP1", "9") is newer and table.live("CP1", "3") is None


def test_an_ownership_change_of_another_identity_changes_nothing() -> None:
    host = Host()
    table = LinkTable(host.stats)
    link = _link(host, epoch=5)
    table.add(link)
    table.owner_changed(identity_token("CP2"), 50)
    assert not link.ended and host.stats.ownership_changes == 0


@pytest.mark.parametrize(
    ("owner", "asked"),
    [
        (None, None),  # no entry: free
        (("node-a", "12"), None),  # this node's own (stale) entry: admission decides alone
        (("node-b", "12"), ("node-b", "12")),  # another node: always asked
    ],
)
def test_whom_to_ask_before_a_takeover(
    owner: tuple[str, str] | None, asked: tuple[str, str] | None
) -> None:
    assert holder_to_ask(owner, "node-a") == asked


@pytest.mark.parametrize(
    ("listening", "answer", "holder"),
    [
        (False, None, "free"),  # nobody listens for that node: it is gone
        (True, None, "live"),  # no answer in time: a busy holder keeps its charge point
        (True, b"alive", "live"),
        (True, b"unresponsive", "unresponsive"),
        (True, b"gone", "free"),  # an entry left behind
        (True, b"what?", "live"),  # not in the contract: keep the holder
    ],
)
def test_holder_state(listening: bool, answer: bytes | None, holder: str) -> None:
    assert holder_state(listening, answer) == holder


@pytest.mark.parametrize(
    ("epoch", "ping", "pinged", "answer"),
    [
        ("5", False, None, b"alive"),  # held; no ping asked
        ("5", True, True, b"alive"),  # held; the charge point answered the ping
        ("5", True, False, b"unresponsive"),
        ("4", True, None, b"gone"),  # an older epoch: the entry asked about is stale
        ("4", False, None, b"gone"),
    ],
)
def test_probe_answers(epoch: str, ping: bool, pinged: bool | None, answer: bytes) -> None:
    host = Host()
    table = LinkTable(host.stats)
    table.add(_link(host, epoch=5))
    first = probe_answer(table, "CP1", epoch, ping)
    if pinged is None:
        assert first == answer
    else:
        assert first is None  # ping first
        assert ping_answer(pinged) == answer


def test_a_lost_link_is_gone_to_a_probe() -> None:
    host = Host()
    table = LinkTable(host.stats)
    link = _link(host, epoch=5)
    table.add(link)
    link.lose("lost")
    assert probe_answer(table, "CP1", "5", False) == b"gone"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (("ocpp2.0.1", "ocpp1.6"), "ocpp2.0.1"),
        (("ocpp2.1",), "ocpp2.1"),
        (("ocpp9",), None),
        (("ocpp9", "ocpp1.6"), "ocpp1.6"),
    ],
)
def test_a_link_takes_the_first_version_with_a_token(
    offered: tuple[str, ...], chosen: str | None
) -> None:
    assert link_version(offered) == chosen


# -- command intake -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "epoch", "echo", "decision", "fields"),
    [
        # Not a CALL: rejected; the refusal names what is known.
        (b'[3,"x",{}]', "7", None, "rejected", {H_CHARGE_POINT: "CP1", H_EPOCH: "7"}),
        (b"not json", "7", None, "rejected", {H_CHARGE_POINT: "CP1", H_EPOCH: "7"}),
        (b'[2,"x","Reset"]', "7", None, "rejected", {H_CHARGE_POINT: "CP1", H_EPOCH: "7"}),
        (b'[2,1,"Reset",{}]', "7", None, "rejected", {H_CHARGE_POINT: "CP1", H_EPOCH: "7"}),
        # A CALL for an epoch this node has no live link of: offline, with its ids.
        (
            CALL,
            "6",
            None,
            "offline",
            {
                H_CHARGE_POINT: "CP1",
                H_EPOCH: "6",
                H_MESSAGE_ID: "c1",
                H_ACTION: "Reset",
                H_COMMAND_ID: "k1",
            },
        ),
        # NATS: a refusal echoes the command's own headers.
        (
            CALL,
            "6",
            {H_CHARGE_POINT: "CP1", "X": "y"},
            "offline",
            {H_CHARGE_POINT: "CP1", "X": "y"},
        ),
        (b"[]", "7", {H_EPOCH: "7"}, "rejected", {H_EPOCH: "7"}),
        (CALL, "7", None, "deliver", None),
    ],
)
def test_command_intake(
    frame: bytes,
    epoch: str,
    echo: Mapping[str, str] | None,
    decision: str,
    fields: dict[str, str] | None,
) -> None:
    host = Host()
    table = LinkTable(host.stats)
    link = _link(host, epoch=7)
    table.add(link)
    taken = take_command(table, frame, "inbox.1", "CP1", epoch, "k1", echo)
    if decision == "deliver":
        assert isinstance(taken, Deliver)
        assert taken.link is link
        command = taken.command
        assert (command.unique_id, command.action, command.frame) == ("c1", "Reset", CALL)
        assert (command.reply, command.command_id) == ("inbox.1", "k1")
    else:
        assert isinstance(taken, Refuse)
        assert taken.status.value == decision
        assert dict(taken.fields) == fields


def test_commands_to_a_link_that_ended_are_offline() -> None:
    host = Host()
    link = _link(host)
    link.lose("lost")
    link.offer_command(_command("a"), 0.0)
    assert _statuses(host) == [("a", "offline")]


def test_one_command_in_flight_the_queue_waits_and_a_full_queue_is_busy() -> None:
    host = Host(command_queue=2)
    link = _link(host)
    for unique_id in ("a", "b", "c", "d"):
        link.offer_command(_command(unique_id), 0.0)
    assert _statuses(host) == [("d", "busy")]  # a in flight, b and c wait
    assert link.pending_commands == 3
    assert link.recv_ready()
    link.answered("a", 3, b'[3,"a",{}]', False, 1.0)
    assert _statuses(host)[-1] == ("a", "ok")
    link.answered("b", 4, b'[4,"b","NotSupported","",{}]', False, 2.0)
    assert _statuses(host)[-1] == ("b", "callerror")
    link.answered("c", 4, b'[4,"c","FormationViolation","",{}]', True, 3.0)
    assert _statuses(host)[-1] == ("c", "rejected")
    assert link.pending_commands == 0
    assert host.stats.commands["busy"] == 1 and host.stats.commands["ok"] == 1


@pytest.mark.parametrize(
    ("message_type", "from_gateway", "status"),
    [
        (3, False, CommandStatus.OK),
        (4, False, CommandStatus.CALLERROR),  # the charge point's CALLERROR (or its stand-in)
        (5, False, CommandStatus.CALLERROR),
        (4, True, CommandStatus.REJECTED),  # validation refused the command: never sent
        (3, True, CommandStatus.OK),  # a plugin answered it with a valid CALLRESULT
    ],
)
def test_answer_status(message_type: int, from_gateway: bool, status: CommandStatus) -> None:
    assert answer_status(message_type, from_gateway) is status


def test_an_answer_to_no_command_in_flight_is_late() -> None:
    host = Host()
    link = _link(host)
    link.answered("zz", 3, b'[3,"zz",{}]', False, 0.0)
    link.offer_command(_command("a"), 0.0)
    link.answered("b", 3, b'[3,"b",{}]', False, 0.0)  # another UniqueId
    assert host.stats.late_answers == 2
    assert host.answers == []
    assert link.pending_commands == 1


async def test_a_command_times_out_at_its_deadline_on_the_tick() -> None:
    host = Host(command_timeout=30.0)
    table = LinkTable(host.stats)
    link = _link(host)
    table.add(link)
    link.offer_command(_command("a"), 100.0)
    link.offer_command(_command("b"), 100.0)
    table.tick(129.9)
    assert host.answers == []
    assert await link.recv() == _command("a").frame  # it reached the charge point
    table.tick(130.0)
    # Sent, no answer: outcome unknown. The next one starts with a deadline of its own.
    assert _statuses(host) == [("a", "timeout")]
    table.tick(159.9)
    assert len(host.answers) == 1
    table.tick(160.0)
    assert _statuses(host) == [("a", "timeout"), ("b", "timeout")]
    # b was never read by the relay: it was taken back from the frames waiting for recv.
    assert not link.recv_ready()
    link.answered("a", 3, b'[3,"a",{}]', False, 161.0)
    assert host.stats.late_answers == 1


@pytest.mark.parametrize(("read", "status"), [(True, "timeout"), (False, "offline")])
async def test_a_lost_link_answers_its_commands(read: bool, status: str) -> None:
    host = Host()
    link = _link(host)
    link.offer_command(_command("a"), 0.0)
    link.offer_command(_command("b"), 0.0)
    if read:
        assert await link.recv() == _command("a").frame
    link.lose("lost")
    # In flight: timeout once the charge point may have it, else offline; queued: offline.
    assert _statuses(host) == [("a", status), ("b", "offline")]
    assert await link.recv() is None
    assert link.end_reason == "lost"


# -- the relay's side of a link -----------------------------------------------------------


async def test_send_frame_routes_by_the_sessions_facts() -> None:
    host = Host()
    link = _link(host)
    assert isinstance(link, FramedLink) and isinstance(link, WakingLink)
    await link.send_frame(b'[2,"u1","Heartbeat",{}]', 2, "u1", "Heartbeat", False)
    await link.send_frame(b'[6,"u2","NotifyPeriodicEventStream",{}]', 6, "u2", "Notify", False)
    assert host.published == [
        (b'[2,"u1","Heartbeat",{}]', 2, "u1", "Heartbeat"),
        (b'[6,"u2","NotifyPeriodicEventStream",{}]', 6, "u2", "Notify"),
    ]
    assert link.published == 2  # the dedup key's frame number
    # Unreadable (only with validation off): dropped, nothing published; what the Session
    # could not tell the link reads itself.
    await link.send_frame(b"garbage", 0, "", "", False)
    await link.send_frame(b'[7,"u3"]', 7, "u3", "", False)
    assert len(host.published) == 2
    await link.send_frame(b'[2,"u4","Heartbeat",{}]', 0, "", "", False)
    assert host.published[-1] == (b'[2,"u4","Heartbeat",{}]', 2, "u4", "Heartbeat")
    assert link.published == 3
    # An answer goes to the command in flight, by the facts (the bytes are not read).
    link.offer_command(_command("k"), 0.0)
    await link.send_frame(b"[4, 'not read']", 4, "k", "ClearCache", True)
    assert _statuses(host) == [("k", "rejected")]


async def test_send_without_facts_reads_the_frame_head() -> None:
    host = Host()
    link = _link(host)
    await link.send(b'[2, "u\\"1", "Heartbeat", {}]')
    assert host.published == [(b'[2, "u\\"1", "Heartbeat", {}]', 2, 'u"1', "Heartbeat")]
    link.offer_command(_command("k"), 0.0)
    await link.send(b'[3,"k",{}]')
    assert _statuses(host) == [("k", "ok")]


async def test_a_closed_link_refuses_frames_and_releases_its_ownership() -> None:
    host = Host()
    link = _link(host)
    await link.close()
    await link.close()
    assert link.end_reason == "closed" and host.released == [link]
    with pytest.raises(TransportUnavailable):
        await link.send_frame(b'[2,"u","Heartbeat",{}]', 2, "u", "Heartbeat", False)


def test_a_parked_reader_is_woken_once_per_frame_or_end() -> None:
    host = Host()
    link = _link(host)
    woken: list[str] = []
    link.set_wake(lambda: woken.append("a"))
    assert woken == [] and not link.recv_ready()
    link.deliver(b'[3,"x",{}]')
    link.deliver(b'[3,"y",{}]')
    assert woken == ["a"]  # once: the pump reads until recv would wait
    link.set_wake(lambda: woken.append("b"))  # frames wait: woken at once
    assert woken == ["a", "b"]
    link.set_wake(None)
    link.lose("moved")
    assert woken == ["a", "b"]


# -- frame metadata -----------------------------------------------------------------------


def test_frame_metadata_names_and_order_and_the_dedup_key() -> None:
    host = Host()
    link = _link(host, "cp.1", epoch=1765000000123456)
    link.published = 3
    fields = frame_metadata(
        {"frame": b"[...]"}, link, "gw=2E1", 2, "u1", "Heartbeat", b"ocpp:gw:gw=2E1:res", "D"
    )
    assert list(fields) == [
        "frame",
        "Ocpp-Cp",
        "Ocpp-Proto",
        "Ocpp-Type",
        "Ocpp-Msg-Id",
        "Ocpp-Action",
        "Ocpp-Node",
        "Ocpp-Epoch",
        "Ocpp-Rx-Ts",
        "Ocpp-Reply",
        "D",
    ]
    assert fields["Ocpp-Cp"] == "cp.1"  # as is; only subjects and keys use the token
    assert fields["Ocpp-Epoch"] == "1765000000123456"
    assert fields["Ocpp-Type"] == "2" and fields["Ocpp-Proto"] == "ocpp1.6"
    assert fields["D"] == "gw=2E1:1765000000123456:3"


# What each broker client encodes once per link and per frame must be what the reference
# (`frame_metadata`) gives, byte for byte: names, order, values, as the client library would
# write them. The frames: plain, odd identities, a UniqueId with a newline, SEND, no action.
ENCODED_FRAMES = [
    ("CP1", 2, "u1", "Heartbeat", b'[2,"u1","Heartbeat",{}]', 1),
    ("cp.1 ü", 2, "a b", "StartTransaction", b'[2,"a b","StartTransaction",{}]', 12),
    (" pad\r\nX", 2, "line\nbreak ", "MeterValues", b"[]", 3),
    ("CP1", 6, "s1", "", b'[6,"s1","",{}]', 99),
]


def _capturing_client() -> tuple[Any, list[bytes]]:
    """A nats-py client that is never connected, keeping the commands it would send."""
    from nats.aio.client import Client

    sent: list[bytes] = []

    async def capture(command: bytes, priority: bool = False) -> None:
        sent.append(command)

    client: Any = Client()
    client._send_command = capture
    client._flush_queue = None
    return client, sent


@pytest.mark.parametrize(
    ("cp", "message_type", "unique_id", "action", "frame", "n"), ENCODED_FRAMES
)
async def test_nats_headers_encoded_per_link_are_what_nats_py_writes(
    cp: str, message_type: int, unique_id: str, action: str, frame: bytes, n: int
) -> None:
    from ocpp_gateway.transports.broker.nats import NatsFrameHeaders, send_hpub

    link = _link(Host(), cp, epoch=1765000000123456)
    link.published = n
    wire = NatsFrameHeaders(link, "gw=2E1", "ocpp.gw.gw=2E1.res", "TX_S", "GEN_S")
    for tx, stream in ((True, "TX_S"), (False, "GEN_S")):
        received = "2026-12-07T09:00:00.000001Z"
        expected: Any = frame_metadata(
            {}, link, "gw=2E1", message_type, unique_id, action, "ocpp.gw.gw=2E1.res", "Nats-Msg-Id"
        )
        expected["Ocpp-Rx-Ts"] = received
        expected["Nats-Expected-Stream"] = stream
        subject = "ocpp.in.tx.16.X." + wire.subject_tail
        ours, sent = _capturing_client()
        headers = wire.encode(tx, message_type, unique_id, action, received, n)
        await send_hpub(ours, subject, "_INBOX.x.1", headers, frame)
        theirs, expected_sent = _capturing_client()
        await theirs._send_publish(subject, "_INBOX.x.1", frame, len(frame), expected)
        assert sent == expected_sent and len(sent) == 1


@pytest.mark.parametrize(
    ("cp", "message_type", "unique_id", "action", "frame", "n"), ENCODED_FRAMES
)
def test_redis_fields_encoded_per_link_are_the_reference_fields(
    cp: str, message_type: int, unique_id: str, action: str, frame: bytes, n: int
) -> None:
    from ocpp_gateway.transports.broker.redis import H_DEDUP, RedisFrameFields

    link = _link(Host(), cp, epoch=42)
    link.published = n
    received = "2026-12-07T09:00:00.000001Z"
    wire = RedisFrameFields(link, "gw=2E1", b"ocpp:gw:gw=2E1:res")
    reference = frame_metadata(
        {"frame": frame},
        link,
        "gw=2E1",
        message_type,
        unique_id,
        action,
        b"ocpp:gw:gw=2E1:res",
        H_DEDUP,
    )
    reference["Ocpp-Rx-Ts"] = received

    from redis.asyncio.connection import Connection

    xadd = ("XADD", "ocpp:in:tx", "MAXLEN", "~", "1000", "*")
    fields: list[Any] = [part for pair in reference.items() for part in pair]
    expected = b"".join(Connection().pack_command(*xadd, *fields))
    assert wire.command(xadd, frame, message_type, unique_id, action, received, n) == expected


TX = frozenset({"StartTransaction", "MeterValues", "TransactionEvent"})


@pytest.mark.parametrize(
    ("message_type", "action", "frame", "tx"),
    [
        (2, "StartTransaction", b'[2,"1","StartTransaction",{}]', True),
        (2, "Heartbeat", b'[2,"1","Heartbeat",{}]', False),
        (2, "MeterValues", b'[2,"1","MeterValues",{"transactionId":5,"meterValue":[]}]', True),
        (2, "MeterValues", b'[2,"1","MeterValues",{"connectorId":1,"meterValue":[]}]', False),
        (6, "TransactionEvent", b'[6,"1","TransactionEvent",{}]', False),  # SEND: never
    ],
)
def test_the_transaction_stream_takes_transaction_class_calls(
    message_type: int, action: str, frame: bytes, tx: bool
) -> None:
    assert to_transaction_stream(message_type, action, frame, TX) is tx


# -- the wire contract's envelopes --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("CP-01_a", "CP-01_a"),
        ("cp.1", "cp=2E1"),
        ("cp=2E1", "cp=3D2E1"),  # no collision with the escaped "cp.1"
        ("ü *>", "=C3=BC=20=2A=3E"),
        # A node id from a host name with dots: the same token in Ocpp-Node, owner entries,
        # reply and command subjects.
        ("gw-3.example.net-4711", "gw-3=2Eexample=2Enet-4711"),
    ],
)
def test_identity_tokens(name: str, token: str) -> None:
    assert identity_token(name) == token


def test_redis_answer_envelope_round_trip_and_refusals() -> None:
    data = encode_redis_answer("cp.1", 17, b'[3,"u",{"a":"\\u00fc"}]')
    assert orjson.loads(data) == {"cp": "cp.1", "epoch": 17, "frame": '[3,"u",{"a":"\\u00fc"}]'}
    assert decode_redis_answer(data) == ("cp.1", "17", b'[3,"u",{"a":"\\u00fc"}]')
    for bad in (b"nope", b"[]", b'{"cp":"x"}', b"1"):
        assert decode_redis_answer(bad) is None


def test_redis_command_and_probe_envelopes() -> None:
    data = encode_redis_command("CP1", "9", CALL, "ocpp:reply:1", "k1", "Reset")
    assert orjson.loads(data) == {
        "cp": "CP1",
        "epoch": "9",
        "frame": CALL.decode(),
        "reply": "ocpp:reply:1",
        "cmd_id": "k1",
        "Ocpp-Action": "Reset",
    }
    assert decode_redis_command(data) == CommandEnvelope("CP1", "9", CALL, "ocpp:reply:1", "k1")
    probe = encode_redis_probe("p1", "CP1", "9", False, "ocpp:gw:a:probe")
    assert decode_redis_command(probe) == ProbeRequest("CP1", "9", False, "p1", "ocpp:gw:a:probe")
    assert decode_redis_command(b'{"cp":"x","epoch":1}') is None  # no frame
    assert decode_redis_command(b"\xff") is None
    reply = encode_probe_reply("p1", b"alive")
    assert reply == b"p1 alive" and decode_probe_reply(reply) == ("p1", b"alive")


@pytest.mark.parametrize("status", list(CommandStatus))
def test_command_outcomes_on_both_brokers(status: CommandStatus) -> None:
    fields = {H_CHARGE_POINT: "CP1", H_EPOCH: "9", H_MESSAGE_ID: "c1", H_ACTION: "Reset"}
    frame = b'[3,"c1",{}]' if status is CommandStatus.OK else b""
    data = encode_redis_outcome(status, frame, fields, "n1")
    assert orjson.loads(data) == {
        "status": status.value,
        "frame": frame.decode(),
        "cp": "CP1",
        "epoch": "9",
        "msg_id": "c1",
        "action": "Reset",
        "cmd_id": "",
        "node": "n1",
    }
    assert decode_redis_outcome(data) == (status, frame)
    headers = nats_outcome_headers(status, fields, "n1")
    # Empty fields are left out; the status and the node come last.
    assert list(headers) == [H_CHARGE_POINT, H_EPOCH, H_MESSAGE_ID, H_ACTION, H_STATUS, H_NODE]
    assert headers[H_STATUS] == status.value and headers[H_NODE] == "n1"


@pytest.mark.parametrize("bad", [b"x", b'{"status":"maybe"}', b"{}", b"[]"])
def test_an_outcome_not_in_the_contract_is_refused(bad: bytes) -> None:
    assert decode_redis_outcome(bad) is None


def test_ownership_values_and_announcements() -> None:
    value = encode_owner_value("gw=2E1", "ocpp2.0.1", "2026-01-01T00:00:00.000000Z")
    assert orjson.loads(value) == {
        "node": "gw=2E1",
        "proto": "ocpp2.0.1",
        "since": "2026-01-01T00:00:00.000000Z",
    }
    assert decode_owner_node(value) == "gw=2E1"
    for bad in (None, b"", b"x", b"[]", b'{"node":null}'):
        assert decode_owner_node(bad) == ""
    announcement = encode_owner_change("cp=2E1", 1765000000123456)
    assert announcement == "cp=2E1 1765000000123456"
    assert decode_owner_change(announcement.encode()) == ("cp=2E1", 1765000000123456)
    assert decode_owner_change(b"cp1 x") is None


def test_nats_probe_request() -> None:
    body = encode_nats_probe("cp.1", "42", True)
    assert orjson.loads(body) == {"cp": "cp.1", "epoch": 42, "ping": True}
    assert decode_nats_probe(body) == ProbeRequest("cp.1", "42", True)
    assert decode_nats_probe(b'{"cp":"x","epoch":1}') == ProbeRequest("x", "1", True)
    for bad in (b"x", b"[]", b'{"cp":"x"}'):
        assert decode_nats_probe(bad) is None


def test_the_table_drives_no_task_and_no_timer() -> None:
    """The link and its table run without an event loop: offering, answering, ticking and
    losing are plain calls (the relay's `recv` is the only await)."""
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    host = Host(command_timeout=1.0)
    table = LinkTable(host.stats)
    link = _link(host)
    table.add(link)
    link.offer_command(_command("a"), 0.0)
    table.tick(5.0)
    table.lose_all()
    assert _statuses(host) == [("a", "timeout")]
    assert table.pending_commands() == 0 and len(table) == 0
