"""Calls the gateway sends to a charge point itself: checked, one in flight, the rest queued.

OCPP-J 1.6 §4.1.1 (and 2.0.1/2.1 Part 4 §4.1.1): a party should not send a CALL before its
previous CALL was answered or timed out. `CallQueue` is that rule as plain state (which call
may go now, which waits, which is refused because too many wait); `CallLink` is the link under
`Connection.links` that holds a queue and the waiters of one charge point; `Connection.call`
composes them with the socket. Whoever originates calls (the admin API, controller backends)
takes a ticket in the same queue, so their calls go one at a time; once a connection has a
`CallLink` made with a `deliver` (a charge point with controllers), the primary's calls take
tickets too (`primary_call`): held, never refused, while a gateway call is in flight.

`prepare_call` checks a call strictly (direction, request schema) whatever the validation
policy and frames it with a fresh UniqueId ("gw-" + 32 hex digits) that cannot collide with a
backend's.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import orjson

from ocpp_gateway import _core
from ocpp_gateway._core import OcppVersionName
from ocpp_gateway.errors import GatewayError

__all__ = [
    "CALL_QUEUE_LIMIT",
    "CallAborted",
    "CallAnswer",
    "CallFailed",
    "CallLink",
    "CallQueue",
    "CallQueueFull",
    "CallRefused",
    "CallTimedOut",
    "call_id",
    "prepare_call",
]

#: Calls that may wait behind the one in flight, per charge point.
CALL_QUEUE_LIMIT = 16

Ticket = TypeVar("Ticket", bound=Hashable)
Turn = Literal["send", "wait", "full"]


def call_id() -> str:
    """Returns: a fresh UniqueId for a call the gateway makes ("gw-" + 32 hex digits, 35
    characters: within OCPP's 36)."""
    return "gw-" + secrets.token_hex(16)


class CallFailed(GatewayError):
    """A call the gateway sends itself did not get an answer (the subclasses say why)."""


class CallRefused(CallFailed):
    """The call is invalid for this charge point and was not sent.

    Args:
        error_code: the OCPP error code (the charge point version's spelling).
        detail: what is wrong.
    """

    def __init__(self, error_code: str, detail: str) -> None:
        super().__init__(f"{error_code}: {detail}")
        self.error_code = error_code
        self.detail = detail


class CallQueueFull(CallFailed):
    """Too many calls already wait for this charge point; the call was not sent."""


class CallTimedOut(CallFailed, TimeoutError):
    """No answer in time.

    Args:
        unique_id: the call's UniqueId when it was sent, None when it timed out in the queue
            (never sent).
    """

    def __init__(self, unique_id: str | None) -> None:
        super().__init__("the charge point did not answer in time")
        self.unique_id = unique_id


class CallAborted(CallFailed, ConnectionError):
    """The charge point disconnected before it answered.

    Args:
        unique_id: the call's UniqueId when it was sent, None when it was still queued.
    """

    def __init__(self, unique_id: str | None) -> None:
        super().__init__("the charge point disconnected")
        self.unique_id = unique_id


@dataclass(frozen=True, slots=True)
class CallAnswer:
    """The charge point's answer to a gateway call.

    Attributes:
        unique_id: the call's UniqueId.
        frame: the answer's bytes (a CALLRESULT, CALLERROR or CALLRESULTERROR, or the core's
            substitute for a result that failed its schema).
    """

    unique_id: str
    frame: bytes


def prepare_call(
    schemas: _core.SchemaSet, version: OcppVersionName, action: str, payload: dict[str, Any]
) -> tuple[str, bytes]:
    """Check a call strictly and frame it.

    Args:
        schemas: the schemas of the charge point's version.
        version: that version.
        action: the action.
        payload: the request payload.

    Returns:
        (UniqueId, the CALL frame's bytes).

    Raises:
        CallRefused: not a call the CSMS makes in `version`, a payload failing its request
            schema, or one nested too deep to be encoded.
    """
    directions = dict(schemas.actions())
    if directions.get(action) not in ("csms_to_cp", "both"):
        kind = "not_implemented" if action not in directions else "not_supported"
        detail = f"{action} is not a call the CSMS makes in {version}"
        raise CallRefused(_core.error_code_for(version, kind), detail)
    unique_id = call_id()
    try:
        body = orjson.dumps(payload)
        frame = orjson.dumps([2, unique_id, action, payload])
    except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (254 levels)
        code = _core.error_code_for(version, "format")
        raise CallRefused(code, "payload nested too deep") from exc
    violation = schemas.validate(action, False, body)
    if violation is not None:
        raise CallRefused(violation[0], violation[1])
    return unique_id, frame


class CallQueue(Generic[Ticket]):
    """Whose call goes next to one charge point: one in flight, at most `limit` waiting, first
    come first served. Plain state, no I/O.

    Args:
        limit: calls that may wait behind the one in flight.
    """

    __slots__ = ("_flying", "_limit", "_waiting")

    def __init__(self, limit: int = CALL_QUEUE_LIMIT) -> None:
        self._limit = limit
        self._flying: Ticket | None = None
        self._waiting: deque[Ticket] = deque()

    @property
    def in_flight(self) -> Ticket | None:
        """The ticket whose call is out now, if any."""
        return self._flying

    def __len__(self) -> int:
        """Returns: the tickets waiting (not the one in flight)."""
        return len(self._waiting)

    def request(self, ticket: Ticket) -> Turn:
        """A new call asks for its turn.

        Args:
            ticket: the call's ticket (unique among those held).

        Returns:
            "send": it may go now (it is in flight); "wait": queued behind others (a later
            `finish` or `withdraw` names it); "full": refused, nothing is held for it.
        """
        if self._flying is None and not self._waiting:
            self._flying = ticket
            return "send"
        if len(self._waiting) >= self._limit:
            return "full"
        self._waiting.append(ticket)
        return "wait"

    def withdraw(self, ticket: Ticket) -> Ticket | None:
        """A call is over: answered, timed out, refused, or gave up while waiting.

        Args:
            ticket: its ticket (in flight or waiting; unknown tickets are ignored).

        Returns:
            The ticket that is now in flight and may send, when this freed the slot and one
            was waiting; else None.
        """
        if ticket != self._flying:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            return None
        self._flying = self._waiting.popleft() if self._waiting else None
        return self._flying

    def clear(self) -> list[Ticket]:
        """Forget every ticket (the connection ended).

        Returns:
            The tickets that were waiting (not the one in flight).
        """
        waiting = list(self._waiting)
        self._waiting.clear()
        self._flying = None
        return waiting


class CallLink:
    """The link under `Connection.links[ADMIN_LINK]`: the relay sends it the charge point's
    answers to the gateway's own calls (found by UniqueId), and it wakes the waiting caller. It
    also holds the charge point's `CallQueue` and wakes the call whose turn has come. Nothing is
    ever read from it.

    Args:
        version: the connection's OCPP version.
        limit: calls that may wait behind the one in flight.
    """

    def __init__(
        self,
        version: str,
        limit: int = CALL_QUEUE_LIMIT,
        deliver: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> None:
        self.version = version
        self.queue: CallQueue[str] = CallQueue(limit)
        self.waiting: dict[str, asyncio.Future[bytes]] = {}
        self._turns: dict[str, asyncio.Future[None]] = {}
        self.closed = False
        # The primary's calls in the same queue (see `primary_call`): their UniqueIds, and
        # the frames held until their turn; `deliver` sends a held frame to the charge point.
        self.primary_ids: set[str] = set()
        self._held: dict[str, bytes] = {}
        self._deliver = deliver

    def primary_call(self, unique_id: str, frame: bytes) -> bool:
        """The primary sends a CALL: it takes a ticket like the gateway's calls, so that the
        charge point has one CALL in flight from either (OCPP-J §4.1.1).

        Args:
            unique_id: its UniqueId.
            frame: its bytes.

        Returns:
            True when it may go now; False when it is held until the calls before it are
            over (it is then sent by `done`). A full queue never holds the primary's call.
        """
        if self._deliver is None or unique_id in self.primary_ids:
            return True  # a retransmission goes as it is
        decision = self.queue.request(unique_id)
        if decision == "full":
            return True
        self.primary_ids.add(unique_id)
        if decision == "wait":
            self._held[unique_id] = frame
            return False
        return True

    def primary_answered(self, unique_id: str) -> None:
        """The charge point answered a call of the primary (or it expired): the next may go.

        Args:
            unique_id: the call's UniqueId (ignored unless it holds a ticket).
        """
        if unique_id in self.primary_ids:
            self.primary_ids.discard(unique_id)
            self._held.pop(unique_id, None)
            self.done(unique_id)

    async def turn(self, unique_id: str) -> None:
        """Wait until the call `unique_id` may be sent; the caller must `done` it after.

        Raises:
            CallQueueFull: too many calls wait already (nothing held).
            CallAborted: the connection ended meanwhile.
        """
        if self.closed:
            raise CallAborted(None)
        decision = self.queue.request(unique_id)
        if decision == "send":
            return
        if decision == "full":
            raise CallQueueFull
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns[unique_id] = waiter
        try:
            await waiter
        except BaseException:
            self._turns.pop(unique_id, None)
            self.done(unique_id)  # gave up (timeout, cancel): leave the queue, or the slot
            raise

    def done(self, unique_id: str) -> None:
        """The call `unique_id` is over (or gave up): the next one, if any, may go.

        Args:
            unique_id: the call's UniqueId.
        """
        self.waiting.pop(unique_id, None)
        following = self.queue.withdraw(unique_id)
        if following is not None:
            held = self._held.pop(following, None)
            if held is not None and self._deliver is not None:
                asyncio.ensure_future(self._deliver(held)).add_done_callback(_ignore_result)
                return
            waiter = self._turns.pop(following, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def send(self, frame: bytes) -> None:
        """Take an answer (a CALLRESULT, CALLERROR or CALLRESULTERROR, or the core's substitute).

        Args:
            frame: the frame's bytes.
        """
        try:
            unique_id = orjson.loads(frame)[1]
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
            return
        waiter = self.waiting.pop(unique_id, None) if isinstance(unique_id, str) else None
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    async def recv(self) -> bytes | None:
        """Returns: None (nothing comes from this link)."""
        return None

    async def close(self) -> None:
        """Fail every waiting call, sent or queued (the connection ended)."""
        self.closed = True
        for unique_id, waiter in self.waiting.items():
            if not waiter.done():
                waiter.set_exception(CallAborted(unique_id))
        self.waiting.clear()
        self.queue.clear()
        self._held.clear()
        self.primary_ids.clear()
        for turn in self._turns.values():
            if not turn.done():
                turn.set_exception(CallAborted(None))
        self._turns.clear()


def _ignore_result(task: asyncio.Future[None]) -> None:
    """A held call sent late: a socket that broke meanwhile is the relay's to notice."""
    if not task.cancelled():
        task.exception()
