"""`ocpp-gateway replay`: play a charge point's side of an Open OCPP Trace against a CSMS.

    ocpp-gateway replay TRACE --to ws://csms.example/ocpp [--speed 1 | --fast] [--as ID]

The charge point's CALLs go out in their recorded order, each with its recorded UniqueId and
bytes, one at a time (the next after the answer to the last), spaced as recorded (divided by
`--speed`) or as fast as the answers come (`--fast`). The CSMS's CALLs are answered with the
charge point's recorded answer to a recorded call of the same action (the one with the same
payload first), under the new UniqueId. Each answer of the CSMS is compared with the recorded
one; a different one is reported with the action, the UniqueId and both answers, and the
exit status is then 1 (0 when every answer matches; 2 when the trace cannot be read or the
CSMS cannot be reached). A call whose answer the trace does not hold (the capture ended before
it came) is played but not compared.

What may differ without being a difference (unless `--strict`): `currentTime` and any other
ISO 8601 time, and the `transactionId` a 1.6 CSMS assigns (later calls of the trace carry the
new id in place of the recorded one).

The planning and comparing are plain functions (`plan`, `compare`, `Replay`); `replay` only
moves the frames.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

import aiohttp
import orjson

__all__ = [
    "Difference",
    "Replay",
    "Step",
    "TracePlan",
    "compare",
    "load_records",
    "main",
    "plan",
    "replay",
]

_VOLATILE_KEYS = frozenset(("currentTime", "transactionId"))
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$")
_CALL_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Step:
    """One CALL of the charge point, with what the CSMS answered when it was recorded.

    Attributes:
        moment: when it was sent (Unix seconds).
        unique_id, action: of the CALL.
        frame: its bytes (the record's `raw`).
        answer: the recorded answer's bytes, or None (none recorded, or a SEND).
        send: a 2.1 SEND (never answered).
    """

    moment: float
    unique_id: str
    action: str
    frame: bytes
    answer: bytes | None
    send: bool = False


@dataclass(slots=True)
class TracePlan:
    """What a trace asks of a replay.

    Attributes:
        charge_point_id: the identity.
        subprotocol: "ocpp1.6", "ocpp2.0.1", "ocpp2.1".
        steps: the charge point's CALLs in order.
        answers: action -> the charge point's recorded (call payload, answer frame) pairs,
            for the CSMS's CALLs.
    """

    charge_point_id: str
    subprotocol: str
    steps: list[Step] = field(default_factory=list)
    answers: dict[str, list[tuple[Any, bytes]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Difference:
    """A call the CSMS answers differently from the recording.

    Attributes:
        action, unique_id: of the charge point's CALL.
        recorded: the recorded answer's bytes (None: none was recorded).
        now: this replay's answer (None: none came in time).
    """

    action: str
    unique_id: str
    recorded: bytes | None
    now: bytes | None

    def describe(self) -> str:
        """Returns: the report's lines for it."""
        recorded = self.recorded.decode(errors="replace") if self.recorded else "(none)"
        now = self.now.decode(errors="replace") if self.now else "(no answer)"
        return (
            f"DIFFERENT {self.action} {self.unique_id}\n  recorded: {recorded}\n  now:      {now}"
        )


def load_records(lines: Iterable[bytes | str]) -> list[dict[str, Any]]:
    """Parse a trace's JSON lines (blank lines are skipped).

    Args:
        lines: the lines.

    Returns:
        The records, in order.

    Raises:
        ValueError: a line is not a JSON object.
    """
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ValueError(f"line {number}: not a JSON object")
        found.append(record)
    return found


def _raw(record: dict[str, Any]) -> bytes:
    """The frame of a record: its `raw`, or one rebuilt from its fields."""
    raw = record.get("raw")
    if isinstance(raw, str):
        return raw.encode()
    kind = record.get("messageType")
    unique_id = record.get("messageId")
    if kind == "CALL":
        return orjson.dumps([2, unique_id, record.get("action"), record.get("payload", {})])
    if kind == "CALLRESULT":
        return orjson.dumps([3, unique_id, record.get("payload", {})])
    error = record.get("error") or {}
    return orjson.dumps(
        [
            4,
            unique_id,
            error.get("code", ""),
            error.get("description", ""),
            error.get("details", {}),
        ]
    )


def _moment(record: dict[str, Any]) -> float:
    text = str(record.get("timestamp", "")).replace("Z", "+00:00")
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def plan(records: Sequence[dict[str, Any]], charge_point_id: str | None = None) -> TracePlan:
    """Work out a replay from a trace's records.

    Args:
        records: the trace, in order.
        charge_point_id: the charge point to replay when the trace holds several.

    Returns:
        The plan.

    Raises:
        ValueError: no charge point, several without a choice, or no OCPP version.
    """
    ids = {r.get("chargePointId") for r in records if r.get("chargePointId")}
    if charge_point_id is None:
        if len(ids) != 1:
            names = ", ".join(sorted(str(i) for i in ids)) or "none"
            raise ValueError(f"the trace names {len(ids)} charge points ({names}): pick one")
        charge_point_id = str(next(iter(ids)))
    mine = [
        r
        for r in records
        if r.get("chargePointId") in (charge_point_id, None)
        and (r.get("meta") or {}).get("malformed") is not True
    ]
    versions = {r.get("ocppVersion") for r in mine if r.get("ocppVersion")}
    if len(versions) != 1:
        raise ValueError(f"the trace of {charge_point_id} has no single OCPP version: {versions}")
    result = TracePlan(charge_point_id, "ocpp" + str(next(iter(versions))))
    for index, record in enumerate(mine):
        if record.get("messageType") != "CALL" or not isinstance(record.get("messageId"), str):
            continue
        direction = record.get("direction")
        unique_id = record["messageId"]
        answer = _answer_of(mine, index, unique_id, direction)
        if direction == "cp-to-csms":
            send = (record.get("meta") or {}).get("messageTypeId") == 6
            result.steps.append(
                Step(
                    _moment(record),
                    unique_id,
                    str(record.get("action")),
                    _raw(record),
                    None if send else answer,
                    send,
                )
            )
        elif direction == "csms-to-cp" and answer is not None:
            action = str(record.get("action"))
            result.answers.setdefault(action, []).append((record.get("payload"), answer))
    return result


def _answer_of(
    records: Sequence[dict[str, Any]], index: int, unique_id: str, direction: object
) -> bytes | None:
    """The first answer after records[index] in the other direction with its UniqueId."""
    for record in records[index + 1 :]:
        if (
            record.get("messageId") == unique_id
            and record.get("direction") != direction
            and record.get("messageType") in ("CALLRESULT", "CALLERROR")
        ):
            return _raw(record)
    return None


def _normal(value: Any, strict: bool) -> Any:
    if strict:
        return value
    if isinstance(value, dict):
        return {k: _normal(v, strict) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_normal(v, strict) for v in value]
    if isinstance(value, str) and _TIME.match(value):
        return "<time>"
    return value


def compare(recorded: bytes | None, now: bytes | None, strict: bool = False) -> bool:
    """Whether the CSMS's answer is the recorded one.

    Args:
        recorded: the recorded answer frame (None: none was recorded).
        now: this replay's answer (None: none came).
        strict: compare times and 1.6 transaction ids too.

    Returns:
        True when both are CALLRESULTs with the same payload (times and assigned transaction
        ids aside unless `strict`), or CALLERRORs with the same error code, or both absent.
    """
    if recorded is None or now is None:
        return recorded is None and now is None
    try:
        old, new = orjson.loads(recorded), orjson.loads(now)
    except orjson.JSONDecodeError:
        return recorded == now
    if not (isinstance(old, list) and isinstance(new, list) and len(old) > 2 and len(new) > 2):
        return recorded == now
    if old[0] != new[0]:
        return False
    if old[0] == 3:
        return bool(_normal(old[2], strict) == _normal(new[2], strict))
    return bool(old[2] == new[2])


class Replay:
    """The state of one replay, without I/O: what to send next, how to answer, what differed.

    Args:
        trace: the plan.
        strict: see `compare`.
    """

    def __init__(self, trace: TracePlan, strict: bool = False) -> None:
        self.trace = trace
        self.strict = strict
        self.differences: list[Difference] = []
        self.unexpected: list[str] = []
        self.same = 0
        self.unrecorded: list[str] = []  # calls whose answer the trace does not hold
        self._ids: dict[Any, Any] = {}  # recorded 1.6 transactionId -> this replay's
        self._used: set[int] = set()

    def frame_of(self, step: Step) -> bytes:
        """The frame to send for a step: its recorded bytes, with a 1.6 transactionId the CSMS
        assigned anew put in place of the recorded one.

        Args:
            step: the step.

        Returns:
            The bytes to send.
        """
        if not self._ids:
            return step.frame
        frame = orjson.loads(step.frame)
        payload = frame[3] if len(frame) > 3 else None
        if isinstance(payload, dict) and payload.get("transactionId") in self._ids:
            payload["transactionId"] = self._ids[payload["transactionId"]]
            return orjson.dumps(frame)
        return step.frame

    def answered(self, step: Step, now: bytes | None) -> Difference | None:
        """Note the CSMS's answer to a step.

        Args:
            step: the step.
            now: the answer's bytes (None: none came in time).

        Returns:
            The difference, or None when it matches the recording (or none was recorded).
        """
        if step.answer is None:
            self.unrecorded.append(f"{step.action} {step.unique_id}")
            return None
        if not self.strict and step.action == "StartTransaction" and step.answer and now:
            old, new = orjson.loads(step.answer), orjson.loads(now)
            if old[0] == new[0] == 3 and "transactionId" in old[2] and "transactionId" in new[2]:
                self._ids[old[2]["transactionId"]] = new[2]["transactionId"]
        if compare(step.answer, now, self.strict):
            self.same += 1
            return None
        found = Difference(step.action, step.unique_id, step.answer, now)
        self.differences.append(found)
        return found

    def answer_call(self, frame: list[Any]) -> bytes:
        """The charge point's answer to a CALL of the CSMS: the recorded answer to a recorded
        call of that action (the one with an equal payload first, each used once, the last one
        again when all were used), or a CALLERROR when the trace has none.

        Args:
            frame: the parsed CALL.

        Returns:
            The answer's bytes, with the CALL's UniqueId.
        """
        unique_id, action, payload = frame[1], frame[2], frame[3]
        pairs = self.trace.answers.get(action, [])
        fresh = [p for p in pairs if id(p) not in self._used]
        chosen = next((p for p in fresh if p[0] == payload), None)
        if chosen is None and fresh:
            chosen = fresh[0]
        if chosen is None and pairs:
            chosen = pairs[-1]
        if chosen is None:
            self.unexpected.append(f"{action} {unique_id}")
            # The same spelling in every version.
            return orjson.dumps([4, unique_id, "NotImplemented", "not in the replayed trace", {}])
        self._used.add(id(chosen))
        answer = orjson.loads(chosen[1])
        answer[1] = unique_id
        return orjson.dumps(answer)

    def report(self, url: str) -> str:
        """Returns: the replay's report (differences first, then a summary line)."""
        lines = [d.describe() for d in self.differences]
        lines.extend(
            f"UNEXPECTED call from the CSMS: {u} (answered NotImplemented)" for u in self.unexpected
        )
        lines.extend(f"NOT COMPARED (no answer in the trace): {u}" for u in self.unrecorded)
        calls = len(self.trace.steps)
        lines.append(
            f"replay: {self.trace.charge_point_id} ({self.trace.subprotocol}) -> {url}: "
            f"{calls} calls, {self.same} answered as recorded, {len(self.differences)} differently"
        )
        return "\n".join(lines)


async def replay(
    trace: TracePlan,
    url: str,
    speed: float = 0.0,
    strict: bool = False,
    call_timeout: float = _CALL_TIMEOUT,
) -> Replay:
    """Play a charge point's side of a trace against a CSMS.

    Args:
        trace: the plan.
        url: the CSMS's URL for charge points (the id is appended, or put in a
            `{charge_point_id}` placeholder).
        speed: recorded gaps between calls are divided by this; 0 sends each call as soon as
            the last one is answered.
        strict: see `compare`.
        call_timeout: seconds to wait for each answer.

    Returns:
        The finished replay (its differences and counts).

    Raises:
        aiohttp.ClientError, OSError: the CSMS cannot be reached.
    """
    from ocpp_gateway.transports.websocket import upstream_url

    state = Replay(trace, strict)
    target = upstream_url(url, trace.charge_point_id)
    waiting: dict[str, asyncio.Future[bytes]] = {}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(target, protocols=(trace.subprotocol,), autoping=True) as ws,
    ):

        async def read() -> None:
            async for message in ws:
                if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    continue
                data = message.data if isinstance(message.data, bytes) else message.data.encode()
                try:
                    frame = orjson.loads(data)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(frame, list) or len(frame) < 3:
                    continue
                if frame[0] == 2 and len(frame) == 4:
                    await ws.send_bytes(state.answer_call(frame))
                elif frame[0] in (3, 4, 5):
                    waiter = waiting.pop(str(frame[1]), None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(data)

        reader = asyncio.create_task(read())
        try:
            started = monotonic()
            first = trace.steps[0].moment if trace.steps else 0.0
            for step in trace.steps:
                if speed > 0:
                    delay = (step.moment - first) / speed - (monotonic() - started)
                    if delay > 0:
                        await asyncio.sleep(delay)
                if step.send:
                    await ws.send_bytes(state.frame_of(step))
                    continue
                waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
                waiting[step.unique_id] = waiter
                await ws.send_bytes(state.frame_of(step))
                try:
                    now: bytes | None = await asyncio.wait_for(waiter, call_timeout)
                except TimeoutError:
                    waiting.pop(step.unique_id, None)
                    now = None
                state.answered(step, now)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    return state


def main(argv: Sequence[str] | None = None) -> int:
    """`ocpp-gateway replay TRACE --to URL`.

    Args:
        argv: the arguments after `replay`.

    Returns:
        0 when every answer matched the recording, 1 when some differed, 2 on an error.
    """
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway replay",
        description="Play a charge point's side of an Open OCPP Trace (JSON lines) against a "
        "CSMS and report each call it now answers differently.",
    )
    parser.add_argument("trace", help="the trace file (`-` for standard input)")
    parser.add_argument(
        "--to", required=True, help="the CSMS URL (the charge point id is appended)"
    )
    parser.add_argument("--charge-point", help="the charge point to replay (a trace of several)")
    parser.add_argument(
        "--as", dest="identity", help="connect under this identity instead of the recorded one"
    )
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument(
        "--speed", type=float, default=1.0, help="recorded time divided by this (default 1)"
    )
    timing.add_argument("--fast", action="store_true", help="each call as soon as answered")
    parser.add_argument("--strict", action="store_true", help="compare times and transaction ids")
    parser.add_argument(
        "--timeout", type=float, default=_CALL_TIMEOUT, help="seconds to wait for each answer"
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.trace == "-":
            lines: list[bytes] = sys.stdin.buffer.read().splitlines()
        else:
            with open(args.trace, "rb") as handle:
                lines = handle.read().splitlines()
        trace = plan(load_records(lines), args.charge_point)
        if args.identity:
            trace.charge_point_id = args.identity
    except (OSError, ValueError) as exc:
        print(f"ocpp-gateway replay: {exc}", file=sys.stderr)
        return 2
    if not args.to.startswith(("ws://", "wss://")):
        print("ocpp-gateway replay: --to is a ws:// or wss:// URL", file=sys.stderr)
        return 2
    speed = 0.0 if args.fast else args.speed
    if speed < 0:
        print("ocpp-gateway replay: --speed must not be negative", file=sys.stderr)
        return 2
    try:
        state = asyncio.run(replay(trace, args.to, speed, args.strict, args.timeout))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        print(f"ocpp-gateway replay: cannot reach {args.to}: {exc}", file=sys.stderr)
        return 2
    print(state.report(args.to))
    return 1 if state.differences else 0
