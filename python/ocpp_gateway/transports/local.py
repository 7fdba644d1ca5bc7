"""Local responder transport: answers charge points itself when no upstream CSMS is configured.

It answers every charge-point-initiated action of OCPP 1.6, 2.0.1 and 2.1 with a schema-valid
response (BootNotification Accepted, Heartbeat with the current time, Authorize and
StartTransaction by allow list or accept-all, transaction ids, empty responses where the schema
allows them, a refusing status where one is required, certificates of unknown status, VAT
numbers refused); a test holds it to that for every action the schemas define. Only a request
it cannot make sense of (possible when validation is off) gets a NotImplemented CALLERROR. Every
response still passes through the connection's Session, so a wrong answer would be caught there.

It can keep a SQLite journal of every frame it saw. Rows are written by one background thread
in batches, so the event loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.schemas import SCHEMA_SUBDIRS, official_schema_dir

__all__ = ["Journal", "LocalLink", "LocalOptions", "LocalTransport"]

log = logging.getLogger("ocpp_gateway.transports.local")

_REFUSING_STATUSES = ("Rejected", "Failed", "NotSupported", "UnknownVendorId", "Invalid", "Unknown")
_STOP = object()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    """An append-only SQLite record of frames, written by a background thread in batches.

    Table `frames(ts REAL, charge_point_id TEXT, direction TEXT, frame TEXT)`.

    Args:
        path: the SQLite file (created if missing).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ocpp-journal", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def record(self, charge_point_id: str, direction: str, frame: bytes) -> None:
        """Queue one frame for writing; never blocks.

        Args:
            charge_point_id: who sent or received it.
            direction: "cp_to_csms" or "csms_to_cp".
            frame: the frame's bytes.
        """
        self._queue.put((time.time(), charge_point_id, direction, frame.decode("utf-8", "replace")))

    def flush(self) -> None:
        """Block until every queued row is written (call from a thread, not the event loop)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()

    def close(self) -> None:
        """Write what is queued and stop the writer thread; idempotent."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS frames "
                "(ts REAL, charge_point_id TEXT, direction TEXT, frame TEXT)"
            )
        except sqlite3.Error as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        stop = False
        while not stop:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = []
            waiters = []
            for item in items:
                if item is _STOP:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    rows.append(item)
            if rows:
                try:
                    with db:
                        db.executemany("INSERT INTO frames VALUES (?, ?, ?, ?)", rows)
                except sqlite3.Error:
                    log.exception("journal write failed", extra={"rows": len(rows)})
            for waiter in waiters:
                waiter.set()
        db.close()


class _Responder:
    """Builds response payloads for one OCPP version."""

    def __init__(self, version: str, transport: LocalTransport) -> None:
        self.version = version
        self.transport = transport
        self.v16 = version == "ocpp1.6"
        self.fallback: dict[str, dict[str, Any] | None] = {}
        self.schema_dir: Path | None
        try:
            self.schema_dir = official_schema_dir(version)  # type: ignore[arg-type]
        except (ValueError, FileNotFoundError):  # pragma: no cover - ocpp is a dependency
            self.schema_dir = None

    def id_status(self, payload: dict[str, Any]) -> str:
        if self.v16:
            tag = payload.get("idTag")
        else:
            token = payload.get("idToken")
            tag = token.get("idToken") if isinstance(token, dict) else None
        return "Accepted" if self.transport.authorizes(tag) else "Invalid"

    def answer(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        handler: Callable[[dict[str, Any]], dict[str, Any] | None] | None = getattr(
            self, f"on_{action}", None
        )
        if handler is not None:
            return handler(payload)
        return self.generic(action)

    def on_BootNotification(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": "Accepted",
            "currentTime": _now(),
            "interval": self.transport.heartbeat_interval,
        }

    def on_Heartbeat(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"currentTime": _now()}

    def on_Authorize(self, payload: dict[str, Any]) -> dict[str, Any]:
        key = "idTagInfo" if self.v16 else "idTokenInfo"
        return {key: {"status": self.id_status(payload)}}

    def on_StartTransaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "transactionId": self.transport.next_transaction_id(),
            "idTagInfo": {"status": self.id_status(payload)},
        }

    def on_TransactionEvent(self, payload: dict[str, Any]) -> dict[str, Any]:
        if isinstance(payload.get("idToken"), dict):
            return {"idTokenInfo": {"status": self.id_status(payload)}}
        return {}

    def on_DataTransfer(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": "UnknownVendorId"}

    def on_Get15118EVCertificate(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Failed", "exiResponse": ""}

    def on_GetCertificateChainStatus(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        # No OCSP/CRL lookups here: every certificate asked about is "Unknown".
        requests = payload.get("certificateStatusRequests")
        if not isinstance(requests, list) or not requests:
            return None
        return {
            "certificateStatus": [
                {
                    "certificateHashData": request.get("certificateHashData"),
                    "source": request.get("source"),
                    "status": "Unknown",
                    "nextUpdate": _now(),
                }
                for request in requests[:4]
                if isinstance(request, dict)
            ]
        }

    def on_VatNumberValidation(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        # No VAT registry here: the number is echoed and refused.
        vat_number = payload.get("vatNumber")
        if not isinstance(vat_number, str):
            return None
        return {"vatNumber": vat_number, "status": "Rejected"}

    def generic(self, action: str) -> dict[str, Any] | None:
        """An empty response when the schema allows it, a refusing status when only a status
        is required, else None (answered with NotImplemented)."""
        if action not in self.fallback:
            self.fallback[action] = self._build_generic(action)
        cached = self.fallback[action]
        return None if cached is None else dict(cached)

    def _build_generic(self, action: str) -> dict[str, Any] | None:
        if self.schema_dir is None:
            return None
        name = f"{action}Response.json"
        try:
            with open(self.schema_dir / name, encoding="utf-8") as fh:
                schema = json.load(fh)
        except (OSError, ValueError):
            return None
        required = schema.get("required", [])
        if not required:
            return {}
        if required != ["status"]:
            return None
        prop = schema.get("properties", {}).get("status", {})
        ref = prop.get("$ref", "")
        if ref.startswith("#/definitions/"):
            prop = schema.get("definitions", {}).get(ref.rsplit("/", 1)[1], {})
        choices = prop.get("enum", [])
        for status in _REFUSING_STATUSES:
            if status in choices:
                return {"status": status}
        return None


class LocalLink:
    """The local responder as seen by one charge point.

    Args:
        transport: the owning transport.
        charge_point_id: the charge point's identity.
        responder: builds responses for the negotiated version.
    """

    __slots__ = ("_closed", "_id", "_journal", "_queue", "_responder", "version")

    def __init__(self, transport: LocalTransport, charge_point_id: str, responder: _Responder):
        self.version = responder.version
        self._id = charge_point_id
        self._responder = responder
        self._journal = transport.journal
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed = False

    async def send(self, frame: bytes) -> None:
        """Take a frame from the charge point and queue the answer to a CALL.

        Args:
            frame: a validated OCPP-J frame.

        Raises:
            TransportUnavailable: the link is closed.
        """
        if self._closed:
            raise TransportUnavailable("local link closed")
        if self._journal is not None:
            self._journal.record(self._id, "cp_to_csms", frame)
        message = orjson.loads(frame)
        if message[0] != 2:  # results of calls we never make, SEND frames: nothing to answer
            return
        unique_id, action, payload = message[1], message[2], message[3]
        body = self._responder.answer(action, payload if isinstance(payload, dict) else {})
        if body is None:
            reply = orjson.dumps(
                [4, unique_id, "NotImplemented", f"{action} is not answered locally", {}]
            )
        else:
            reply = orjson.dumps([3, unique_id, body])
        if self._journal is not None:
            self._journal.record(self._id, "csms_to_cp", reply)
        self._queue.put_nowait(reply)

    async def recv(self) -> bytes | None:
        """Returns: the next answer, or None once closed."""
        if self._closed and self._queue.empty():
            return None
        return await self._queue.get()

    async def close(self) -> None:
        """Close the link; a pending `recv` returns None."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)


@dataclass(frozen=True, slots=True)
class LocalOptions:
    """Settings of a local responder: the `[local]` table (the default backend without an
    upstream) or a `[transports.<name>]` table of type "local".

    Attributes:
        journal: SQLite file recording every frame the responder saw; None keeps no journal.
        accept_all: accept every idTag / idToken when True; else only `allowed_id_tags`.
        allowed_id_tags: the id tags accepted when `accept_all` is False.
        heartbeat_interval: seconds, sent in BootNotification responses.
    """

    journal: str | None = None
    accept_all: bool = True
    allowed_id_tags: tuple[str, ...] = ()
    heartbeat_interval: int = 300

    def __post_init__(self) -> None:
        if not isinstance(self.allowed_id_tags, tuple):
            object.__setattr__(self, "allowed_id_tags", tuple(self.allowed_id_tags))

    def check(self, key: str) -> list[str]:
        """Returns: the errors of these settings, each starting with `key`."""
        if self.heartbeat_interval <= 0:
            return [f"{key}.heartbeat_interval: must be positive"]
        return []


class LocalTransport:
    """The embedded local responder.

    Args:
        name: the transport's configured name.
        journal: SQLite file to record frames in, or None.
        accept_all: accept every id tag.
        allowed_id_tags: id tags accepted when `accept_all` is False.
        heartbeat_interval: seconds, sent in BootNotification responses.
    """

    def __init__(
        self,
        name: str = "local",
        *,
        journal: str | None = None,
        accept_all: bool = True,
        allowed_id_tags: Iterable[str] = (),
        heartbeat_interval: int = 300,
    ) -> None:
        self.name = name
        self.accept_all = accept_all
        self.allowed_id_tags = frozenset(allowed_id_tags)
        self.heartbeat_interval = heartbeat_interval
        self.journal = Journal(journal) if journal else None
        self._transaction_ids = itertools.count(1)
        self._responders: dict[str, _Responder] = {}

    @classmethod
    def from_options(
        cls, name: str, options: LocalOptions, max_message_bytes: int = 0
    ) -> LocalTransport:
        """Build a responder from its typed settings (it takes frames of any size)."""
        return cls(
            name,
            journal=options.journal,
            accept_all=options.accept_all,
            allowed_id_tags=options.allowed_id_tags,
            heartbeat_interval=options.heartbeat_interval,
        )

    def authorizes(self, id_tag: object) -> bool:
        """Args:
            id_tag: the idTag / idToken value from a request.

        Returns:
            True when the tag is accepted.
        """
        return self.accept_all or (isinstance(id_tag, str) and id_tag in self.allowed_id_tags)

    def next_transaction_id(self) -> int:
        """Returns: a fresh transaction id (1, 2, ...)."""
        return next(self._transaction_ids)

    def answer(
        self, subprotocol: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The local responder's answer to a charge point CALL, for other backends to reuse
        (the example broker backend answers with it).

        Args:
            subprotocol: the OCPP version of the call.
            action: the CALL's action.
            payload: its payload.

        Returns:
            A schema-valid response payload, or None when the responder cannot answer it.

        Raises:
            TransportUnavailable: unknown version.
        """
        return self._responder(subprotocol).answer(action, payload)

    def _responder(self, subprotocol: str) -> _Responder:
        responder = self._responders.get(subprotocol)
        if responder is None:
            if subprotocol not in SCHEMA_SUBDIRS:
                raise TransportUnavailable(f"local responder does not speak {subprotocol}")
            responder = self._responders[subprotocol] = _Responder(subprotocol, self)
        return responder

    async def open(self, charge_point_id: str, versions: tuple[str, ...]) -> LocalLink:
        """Open the local link of a charge point, in the first of `versions` (the responder
        speaks them all).

        Args:
            charge_point_id: the identity.
            versions: the versions the charge point offered, preferred first.

        Returns:
            The link.

        Raises:
            TransportUnavailable: no known version.
        """
        known = [v for v in versions if v in SCHEMA_SUBDIRS]
        if not known:
            raise TransportUnavailable(f"local responder speaks none of {', '.join(versions)}")
        return LocalLink(self, charge_point_id, self._responder(known[0]))

    async def close(self) -> None:
        """Flush and close the journal."""
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close)
