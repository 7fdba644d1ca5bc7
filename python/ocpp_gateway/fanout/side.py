"""One charge point's link to one second backend (`SideLink`): copies, answers, commands.

A `SideLink` opens its own link to its backend for one charge point, as if it were the charge
point, and keeps it open by itself (reopened after a loss, with a growing pause up to
`MAX_PAUSE` seconds). The charge point pump only appends the charge point's CALLs to the link's
bounded queue (`offer`): it never waits for a second backend. When the queue is full the oldest
frame goes (counted, and logged at most `LOG_BURST` times per 10 s per backend). A frame stays
queued until it was written, so what waited while the link was down goes after it is reopened.

What a second backend sends back:
- its answers are discarded; a candidate's are first compared with the primary's
  (`compare.compare_answers`), counted, and kept as redacted samples when they disagree;
- its CALLs reach the charge point only when `rules.command_refusal` allows them (a controller,
  an action it lists): then through `Connection.call`, so with a UniqueId the gateway assigns
  and one gateway call in flight per charge point, and the answer goes back to this link only,
  with the backend's own UniqueId restored. A refused command gets a CALLERROR SecurityError;
  one the charge point's schemas refuse, the validation error; one that finds the queue full,
  waits past call_timeout or is never answered, a GenericError.

A candidate on OCPP 1.6 gives transactions ids of its own: once its StartTransaction answer and
the primary's are both known, the pair goes to its durable store, and the charge point's
MeterValues and StopTransaction reach the candidate with the candidate's id in place of the
primary's (the writer waits for an outstanding StartTransaction pair, at most call_timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from time import monotonic
from typing import Any, Literal, Protocol

import orjson

from ocpp_gateway import _core
from ocpp_gateway.aio import stop
from ocpp_gateway.calls import CallAborted, CallQueueFull, CallRefused, CallTimedOut
from ocpp_gateway.capture.redact import Redactor
from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.fanout.backend import Backend, ChargePoint
from ocpp_gateway.fanout.compare import compare_answers
from ocpp_gateway.fanout.rules import REFUSAL_CODE, command_refusal, restore_unique_id
from ocpp_gateway.fanout.store import CandidateStore
from ocpp_gateway.transports import Link

__all__ = ["MAX_PAUSE", "Hub", "SideLink", "map_transaction_id"]

log = logging.getLogger("ocpp_gateway.fanout")

#: Seconds at most between two attempts to open a lost second backend's link.
MAX_PAUSE = 5.0
_FIRST_PAUSE = 0.1
_V16 = "ocpp1.6"
_CALL = 2
_MIN_CALL_LENGTH = 4
_MIN_ANSWER_LENGTH = 3
_TRANSACTION_ACTIONS = frozenset(("MeterValues", "StopTransaction"))
_ANSWER_TYPES = frozenset((b"3", b"4", b"5"))  # the MessageTypeId digit after "[" (and spaces)

LinkState = Literal["connecting", "up", "down"]


class Hub(Protocol):
    """What a `SideLink` uses of the process's fanout (`hub.Fanout`)."""

    call_timeout: float
    redactor: Redactor
    links: set[SideLink]


class SideLink:
    """One charge point's link to one second backend.

    Args:
        fanout: the process's fanout.
        backend: the backend.
        conn: the charge point's connection.

    Attributes:
        state: "connecting" (never open yet), "up" or "down" (lost, being reopened).
        dropped: frames this link's queue let go.
        pending: a candidate's comparisons in progress: UniqueId -> [action, time, primary's
            answer, candidate's answer].
    """

    def __init__(
        self, fanout: Hub, backend: Backend, conn: ChargePoint, link: Link | None = None
    ) -> None:
        self.fanout = fanout
        self.backend = backend
        self.conn = conn
        self.link: Link | None = link  # the open link, when up (given: already open)
        self.task: asyncio.Task[None] | None = None
        self._keep = False  # the link is handed over (a cutover): do not close it
        self.state: LinkState = "connecting"
        self.queue: deque[tuple[bytes, str, str]] = deque()
        self.dropped = 0
        self.opened = 0
        self.pending: dict[str, list[Any]] = {}
        self._limit = backend.config.queue_frames
        # The writer's wait for a copy (or for the reader's end), resolved by `offer`.
        self._waiter: asyncio.Future[None] | None = None
        self._commands: set[asyncio.Task[None]] = set()
        self._mapped = asyncio.Event()
        self._candidate = backend.role == "candidate"

    def describe(self) -> dict[str, Any]:
        """Returns: this link as the admin API lists it."""
        return {
            "name": self.backend.name,
            "role": self.backend.role,
            "state": self.state,
            "queued": len(self.queue),
            "dropped": self.dropped,
            "reconnects": max(0, self.opened - 1),
        }

    def quiet(self) -> bool:
        """Returns: the link is up with nothing queued and no comparison open (a cutover may
        take it)."""
        return self.state == "up" and self.link is not None and not self.queue and not self.pending

    def release(self) -> Link:
        """Hand the open link over (a cutover makes it the primary's) and end this side link;
        call only when `quiet`.

        Returns:
            The open link.
        """
        link = self.link
        assert link is not None
        self._keep = True
        self.link = None
        self.state = "down"
        if self.task is not None:
            self.task.cancel()
        return link

    # -- from the relay --------------------------------------------------------------------

    def offer(self, frame: bytes, unique_id: str, action: str) -> None:
        """Queue a CALL of the charge point for the backend; never waits.

        Args:
            frame: the CALL as the charge point sent it.
            unique_id: its UniqueId.
            action: its action.
        """
        queue = self.queue
        if len(queue) >= self._limit:
            queue.popleft()
            self._drop()
        queue.append((frame, unique_id, action))
        if self._candidate:
            self.pending[unique_id] = [action, monotonic(), None, None]
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def primary_answer(self, unique_id: str | None, frame: bytes) -> None:
        """The primary answered a CALL of the charge point (a candidate compares).

        Args:
            unique_id: the answer's UniqueId.
            frame: the answer.
        """
        entry = self.pending.get(unique_id or "")
        if entry is not None:
            entry[2] = frame
            if entry[3] is not None:
                self._compared(unique_id or "", entry)

    def _drop(self) -> None:
        self.dropped += 1
        backend = self.backend
        backend.dropped.inc()
        suppressed = backend.drop_log.allow(monotonic())
        if suppressed is not None:
            log.warning(
                "second backend queue full, oldest frame dropped",
                extra={
                    "backend": backend.name,
                    "charge_point_id": self.conn.charge_point_id,
                    "queued": len(self.queue),
                    **({"suppressed": suppressed} if suppressed else {}),
                },
            )

    def _unreachable(self, exc: TransportUnavailable) -> None:
        backend = self.backend
        suppressed = backend.connect_log.allow(monotonic())
        if suppressed is not None:
            log.warning(
                "second backend unreachable, trying again",
                extra={
                    "backend": backend.name,
                    "charge_point_id": self.conn.charge_point_id,
                    "error": str(exc),
                    **({"suppressed": suppressed} if suppressed else {}),
                },
            )

    # -- the link's task -------------------------------------------------------------------

    async def run(self) -> None:
        """Open the link, write the queue to it and read from it; reopen it when lost; until
        cancelled (the connection ended)."""
        backend = self.backend
        conn = self.conn
        pause = _FIRST_PAUSE
        try:
            while True:
                try:
                    link = self.link or await backend.transport.open(
                        conn.charge_point_id, (conn.version,)
                    )
                except TransportUnavailable as exc:
                    self.state = "down" if self.opened else "connecting"
                    self._unreachable(exc)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, MAX_PAUSE)
                    continue
                self.opened += 1
                if self.opened > 1:
                    backend.reconnects.inc()
                pause = _FIRST_PAUSE
                self.state = "up"
                self.link = link
                await self._serve(link)
                self.link = None
                self.state = "down"
        except asyncio.CancelledError:
            pass
        except Exception:
            # Never the charge point's business: this backend stops serving it, and says so.
            self.state = "down"
            log.exception("second backend link failed", extra={"backend": backend.name})
        finally:
            self.fanout.links.discard(self)
            await stop(list(self._commands))

    async def _serve(self, link: Link) -> None:
        """Write and read one open link until it is lost."""
        reader = asyncio.ensure_future(self._read(link))
        reader.add_done_callback(self._reader_ended)
        loop = asyncio.get_running_loop()
        try:
            queue = self.queue
            sent = self.backend.sent
            while not reader.done():
                if not queue:
                    self._waiter = waiter = loop.create_future()
                    await waiter
                    continue
                frame, unique_id, action = queue[0]
                if self._candidate and action in _TRANSACTION_ACTIONS:
                    frame = await self._candidate_ids(frame)
                try:
                    await link.send(frame)
                except (TransportUnavailable, ConnectionError):
                    return
                sent.inc()
                if queue and queue[0][1] == unique_id:
                    queue.popleft()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if not self._keep:
                await link.close()

    def _reader_ended(self, _: object) -> None:
        """The link was lost: wake the writer so that it ends too."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _read(self, link: Link) -> None:
        received = self.backend.received
        candidate = self._candidate
        while True:
            data = await link.recv()
            if data is None:
                return
            received.inc()
            if not candidate and data[1:8].lstrip()[:1] in _ANSWER_TYPES:
                continue  # an answer of an observer or controller: discarded unread
            try:
                message = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(message, list) or len(message) < _MIN_ANSWER_LENGTH:
                continue
            if message[0] == _CALL:
                await self._command(link, message)
            elif self._candidate and isinstance(message[1], str):
                entry = self.pending.get(message[1])
                if entry is not None:
                    entry[3] = data
                    if entry[2] is not None:
                        self._compared(message[1], entry)
            # Any other answer of a second backend is discarded.

    # -- commands --------------------------------------------------------------------------

    async def _command(self, link: Link, message: list[Any]) -> None:
        backend = self.backend
        version = self.conn.version
        unique_id = message[1] if isinstance(message[1], str) else None
        if unique_id is None:
            return  # nothing to answer to
        if len(message) < _MIN_CALL_LENGTH or not isinstance(message[2], str):
            code = _core.error_code_for(version, "format")
            await _answer(link, [4, unique_id, code, "not a CALL", {}])
            return
        action, payload = message[2], message[3]
        refusal = command_refusal(backend.role, backend.commands, action)
        if refusal is not None or not isinstance(payload, dict):
            backend.refused.inc()
            suppressed = backend.refusal_log.allow(monotonic())
            if suppressed is not None:
                log.info(
                    "second backend command refused",
                    extra={
                        "backend": backend.name,
                        "charge_point_id": self.conn.charge_point_id,
                        "action": action[:64],
                        **({"suppressed": suppressed} if suppressed else {}),
                    },
                )
            detail = refusal or "the payload is not an object"
            code = REFUSAL_CODE if refusal else _core.error_code_for(version, "type")
            await _answer(link, [4, unique_id, code, detail, {}])
            return
        backend.allowed.inc()
        task = asyncio.ensure_future(self._forward_command(link, unique_id, action, payload))
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _forward_command(
        self, link: Link, unique_id: str, action: str, payload: dict[str, Any]
    ) -> None:
        generic = _core.error_code_for(self.conn.version, "generic")
        try:
            answer = await self.conn.call(
                action, payload, self.fanout.call_timeout, origin=self.backend.name
            )
        except CallRefused as exc:
            reply: bytes = orjson.dumps([4, unique_id, exc.error_code, exc.detail[:200], {}])
        except CallQueueFull:
            reply = orjson.dumps([4, unique_id, generic, "too many calls wait", {}])
        except CallTimedOut:
            reply = orjson.dumps([4, unique_id, generic, "no answer from the charge point", {}])
        except CallAborted:
            return
        else:
            reply = restore_unique_id(answer.frame, answer.unique_id, unique_id)
        with contextlib.suppress(TransportUnavailable, ConnectionError):
            await link.send(reply)

    # -- a candidate -----------------------------------------------------------------------

    def _compared(self, unique_id: str, entry: list[Any]) -> None:
        """Both answers are in: compare, count, keep a sample, map a 1.6 transaction."""
        del self.pending[unique_id]
        action, _, primary, candidate = entry
        outcome, detail = compare_answers(primary, candidate)
        backend = self.backend
        backend.counted(action, outcome)
        store = backend.store
        if store is None:
            return
        cp_id = self.conn.charge_point_id
        if outcome == "disagree":
            redact = self.fanout.redactor
            store.sample(
                cp_id,
                action,
                detail,
                _redacted(redact, action, primary),
                _redacted(redact, action, candidate),
            )
        if action == "StartTransaction" and self.conn.version == _V16:
            ids = _transaction_id(primary), _transaction_id(candidate)
            if ids[0] is not None and ids[1] is not None:
                store.map_transaction(self.conn.primary, cp_id, ids[0], ids[1])
            self._mapped.set()

    def expire(self, before: float) -> None:
        """Comparisons started before `before` without both answers end: "missing" when the
        primary answered (the candidate did not), forgotten otherwise.

        Args:
            before: a `time.monotonic()` time.
        """
        for unique_id, entry in list(self.pending.items()):
            if entry[1] < before:
                del self.pending[unique_id]
                if entry[2] is not None:
                    self.backend.counted(entry[0], "missing")
                if entry[0] == "StartTransaction":
                    self._mapped.set()

    def _starts_pending(self) -> bool:
        return any(entry[0] == "StartTransaction" for entry in self.pending.values())

    async def _candidate_ids(self, frame: bytes) -> bytes:
        """A 1.6 MeterValues or StopTransaction with the candidate's transactionId."""
        store = self.backend.store
        if store is None or self.conn.version != _V16:
            return frame
        primary, cp_id = self.conn.primary, self.conn.charge_point_id
        mapped = map_transaction_id(frame, store, primary, cp_id)
        if mapped is None and self._starts_pending():
            # The candidate's StartTransaction answer is on its way: wait for the pair.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.fanout.call_timeout):
                    while mapped is None and self._starts_pending():
                        self._mapped.clear()
                        await self._mapped.wait()
                        mapped = map_transaction_id(frame, store, primary, cp_id)
        return frame if mapped is None else mapped


def map_transaction_id(
    frame: bytes, store: CandidateStore, primary: str, charge_point_id: str
) -> bytes | None:
    """A 1.6 MeterValues or StopTransaction CALL with the transactionId `primary` gave replaced
    by the one the other backend gave the same transaction (`store`).

    Args:
        frame: the CALL.
        store: the id map.
        primary: the name of the backend whose id the charge point uses.
        charge_point_id: the charge point.

    Returns:
        The rewritten frame, or None when it carries no transactionId or the id is not mapped.
    """
    try:
        message = orjson.loads(frame)
        payload = message[3]
        primary_id = payload.get("transactionId")
    except (orjson.JSONDecodeError, IndexError, AttributeError, TypeError):
        return None
    if primary_id is None:
        return None
    found = store.candidate_id(primary, charge_point_id, orjson.dumps(primary_id).decode())
    if found is None:
        return None
    payload["transactionId"] = orjson.loads(found)
    return orjson.dumps(message)


def _transaction_id(frame: bytes) -> str | None:
    """The transactionId of a StartTransaction CALLRESULT, as JSON text."""
    try:
        message = orjson.loads(frame)
        value = message[2]["transactionId"] if message[0] == 3 else None
    except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
        return None
    return None if value is None else orjson.dumps(value).decode()


def _redacted(redactor: Redactor, action: str, frame: bytes) -> str:
    """An answer for a report sample, its secrets hidden."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return "<unreadable>"
    if isinstance(message, list) and len(message) >= _MIN_ANSWER_LENGTH:
        if message[0] == 3:
            redactor.apply(action, 3, message[2])
        return orjson.dumps(message).decode()
    return "<unreadable>"


async def _answer(link: Link, message: list[Any]) -> None:
    """Send the gateway's own answer to a second backend's CALL."""
    with contextlib.suppress(TransportUnavailable, ConnectionError):
        await link.send(orjson.dumps(message))
