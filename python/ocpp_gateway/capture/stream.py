"""Per charge point capture: the stream a connection's relay feeds, and the process's set of them.

A `CaptureStream` belongs to one charge point identity and outlives its connections (its ring
can be read after the charge point left). While it is on, the connection points at it
(`Connection.capture`), and the relay calls `from_charge_point` / `from_backend` for every
frame once the Session judged it; when capture is off that attribute is None and the relay
does nothing else. The hook appends one tuple to a bounded ring, hands the same tuple to the
file sink's queue and to the live tails, and counts the bound down: no JSON is built here.

`Capture` holds the streams of one process: it attaches a connecting charge point to its
stream (one switched on by the API, or one made for an identity the configuration selects),
starts and stops streams for the API, and keeps at most `max_streams` of them (the stopped
ones are forgotten first).
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from ocpp_gateway.capture.record import Entry, GatewaySent, Judged, TraceIdentity, records
from ocpp_gateway.capture.redact import Redactor
from ocpp_gateway.capture.sink import FileSink
from ocpp_gateway.config.sections import CaptureConfig

__all__ = ["Capture", "CaptureStream", "CapturedConnection"]

_DEFAULT = "default"
_ADMIN_LINK = "\x00admin"  # connection.ADMIN_LINK (not imported: the connection imports us)
_TAIL_QUEUE = 1024


class CapturedConnection(Protocol):
    """What capture reads of a charge point connection (`connection.Connection`), and its
    `capture` slot, which a stream sets while it records that connection."""

    capture: CaptureStream | None

    @property
    def charge_point_id(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def connected_at(self) -> float: ...

    @property
    def links(self) -> Mapping[str, object]: ...

    @property
    def call_origin(self) -> Mapping[str, str]: ...


class CaptureStream:
    """The capture of one charge point identity.

    Args:
        charge_point_id: the identity.
        ring_frames: frames kept in memory.
        frames: frames to capture before it stops by itself (None: no bound).
        seconds: seconds to capture before it stops by itself (None: no bound).
        sink: the trace files, or None.
        worker: the gateway worker id.
        ring_bytes: bytes of frames kept in memory (the oldest frames go first).

    Attributes:
        ring: the last captured frames, oldest first.
        active: whether frames are being captured.
        frames_left, deadline: the bounds still to go (None: none).
        tails: queues of the live tails (the API's event streams).
        lagged: frames a slow live tail missed.
        files_dropped: frames left out of the files (the writer's queue was full).
    """

    __slots__ = (
        "_conn",
        "_ident",
        "_ring_bytes",
        "_ring_frames",
        "_sink",
        "_worker",
        "active",
        "bytes",
        "charge_point_id",
        "deadline",
        "files_dropped",
        "frames_left",
        "lagged",
        "ring",
        "seq",
        "started",
        "tails",
    )

    def __init__(
        self,
        charge_point_id: str,
        ring_frames: int,
        frames: int | None,
        seconds: float | None,
        sink: FileSink | None,
        worker: int = 0,
        ring_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self.charge_point_id = charge_point_id
        self.ring: deque[Entry] = deque()
        self.bytes = 0  # of the frames in the ring
        self._ring_frames = ring_frames
        self._ring_bytes = ring_bytes
        self.frames_left = frames
        self.started = time.time()
        self.deadline = None if seconds is None else self.started + seconds
        self._sink = sink
        self._worker = worker
        self.seq = 0
        self.active = True
        self.tails: list[asyncio.Queue[Entry]] = []
        self.lagged = 0
        self.files_dropped = 0
        self._conn: weakref.ref[CapturedConnection] | None = None
        self._ident: TraceIdentity | None = None

    # -- the relay's hooks -------------------------------------------------------------------

    def from_charge_point(self, data: bytes, verdict: Judged) -> None:
        """Capture a frame from the charge point, judged by the Session (before the relay acts
        on it).

        Args:
            data: its bytes.
            verdict: the Session's verdict.
        """
        backend = _DEFAULT
        conn = self._conn() if self._conn is not None else None
        if conn is not None and conn.call_origin:
            unique_id = getattr(verdict, "unique_id", None)
            backend = conn.call_origin.get(unique_id or "", _DEFAULT)
            if backend == _ADMIN_LINK:
                backend = "admin"
        self._add("cp_to_csms", data, verdict, backend)

    def from_backend(self, data: bytes, verdict: Judged, backend: str) -> None:
        """Capture a frame from a backend, judged by the Session.

        Args:
            data: its bytes.
            verdict: the Session's verdict.
            backend: the transport's name.
        """
        self._add("csms_to_cp", data, verdict, backend)

    def from_gateway(
        self, direction: str, data: bytes, action: str | None, reason: str, backend: str = _DEFAULT
    ) -> None:
        """Capture a frame the gateway sent itself.

        Args:
            direction: "csms_to_cp" (to the charge point) or "cp_to_csms" (to a backend).
            data: its bytes.
            action: the action of its CALL, or of the call it answers.
            reason: why it sent it: "plugin", "rate_limited", "admin_call".
            backend: the backend it went to, or on whose behalf it was sent.
        """
        self._add(direction, data, GatewaySent(action, reason), backend)

    def _add(self, direction: str, data: bytes, verdict: Judged, backend: str) -> None:
        ident = self._ident
        if ident is None or not self.active:
            return
        now = time.time()
        self.seq += 1
        entry = (self.seq, now, direction, data, verdict, backend, ident)
        ring = self.ring
        ring.append(entry)
        self.bytes += len(data)
        while len(ring) > self._ring_frames or (self.bytes > self._ring_bytes and len(ring) > 1):
            self.bytes -= len(ring.popleft()[3])
        if self._sink is not None and not self._sink.put(entry):
            self.files_dropped += 1
        for tail in self.tails:
            try:
                tail.put_nowait(entry)
            except asyncio.QueueFull:
                self.lagged += 1
        left = self.frames_left
        if left is not None:
            self.frames_left = left = left - 1
            if left <= 0:
                self.stop()
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            self.stop()

    # -- control -----------------------------------------------------------------------------

    def bind(self, conn: CapturedConnection, worker: int) -> None:
        """Capture this connection of the identity from now on.

        Args:
            conn: the connection.
            worker: the gateway worker id.
        """
        previous = self._conn() if self._conn is not None else None
        if previous is not None and previous is not conn and previous.capture is self:
            previous.capture = None  # an older connection of the identity, still closing
        link = conn.links.get(_DEFAULT)
        epoch = getattr(link, "epoch", None) or round(conn.connected_at, 3)
        self._ident = TraceIdentity(conn.charge_point_id, conn.version, epoch, worker)
        self._conn = weakref.ref(conn)
        conn.capture = self

    def stop(self) -> None:
        """Stop capturing (the ring stays readable)."""
        self.active = False
        conn = self._conn() if self._conn is not None else None
        if conn is not None and conn.capture is self:
            conn.capture = None

    def expired(self) -> bool:
        """Returns: True when the time bound passed (checked by the API; frames check it too)."""
        if self.active and self.deadline is not None and time.time() >= self.deadline:
            self.stop()
        return not self.active

    def tail(self) -> asyncio.Queue[Entry]:
        """Returns: a new live tail's queue (remove it with `untail`)."""
        found: asyncio.Queue[Entry] = asyncio.Queue(_TAIL_QUEUE)
        self.tails.append(found)
        return found

    def untail(self, found: asyncio.Queue[Entry]) -> None:
        """Args:
        found: a queue from `tail`."""
        if found in self.tails:
            self.tails.remove(found)

    def status(self) -> dict[str, Any]:
        """Returns: the stream as the API shows it."""
        self.expired()
        return {
            "id": self.charge_point_id,
            "active": self.active,
            "frames": self.seq,
            "frames_left": self.frames_left,
            "until": self.deadline,
            "ring": len(self.ring),
            "ring_bytes": self.bytes,
            "tails": len(self.tails),
            "lagged": self.lagged,
            "files_dropped": self.files_dropped,
        }


class Capture:
    """The capture streams of one gateway process.

    Args:
        config: the `[capture]` settings.
        worker: the worker id.
    """

    def __init__(self, config: CaptureConfig, worker: int = 0) -> None:
        self.config = config
        self.worker = worker
        self.streams: OrderedDict[str, CaptureStream] = OrderedDict()
        self._patterns = tuple(config.charge_points)
        self.redactor: Redactor | None = Redactor(
            config.secret_names, config.redact, config.hash_id_tags, config.id_tag_salt
        )
        if not self.redactor.active:
            self.redactor = None
        self._sink: FileSink | None = None

    @property
    def sink(self) -> FileSink | None:
        """The trace files (started with the first stream), or None without `directory`."""
        directory = self.config.directory
        if self._sink is None and directory:
            cfg = self.config
            self._sink = FileSink(
                directory,
                self.worker,
                cfg.file_max_bytes,
                cfg.file_max_seconds,
                cfg.files_keep,
                cfg.queue_frames,
                self.redactor,
            )
        return self._sink

    def selected(self, charge_point_id: str) -> bool:
        """Args:
            charge_point_id: an identity.

        Returns:
            True when `[capture] charge_points` names it (an id or a glob pattern).
        """
        return any(fnmatch.fnmatchcase(charge_point_id, p) for p in self._patterns)

    def attach(self, conn: CapturedConnection) -> None:
        """Bind a new connection to its identity's stream, if it is captured.

        Args:
            conn: the connection, just registered.
        """
        stream = self.streams.get(conn.charge_point_id)
        if stream is not None and not stream.expired():
            stream.bind(conn, self.worker)
        elif self._patterns and self.selected(conn.charge_point_id):
            self._new(conn.charge_point_id, None, None).bind(conn, self.worker)

    def start(
        self, conn: CapturedConnection, frames: int | None, seconds: float | None
    ) -> CaptureStream:
        """Switch capture on for a connected charge point (a running capture is replaced, its
        ring kept).

        Args:
            conn: its connection.
            frames, seconds: the bounds (None: none).

        Returns:
            The stream.
        """
        old = self.streams.get(conn.charge_point_id)
        stream = self._new(conn.charge_point_id, frames, seconds)
        if old is not None:
            old.stop()
            stream.ring.extend(list(old.ring)[-self.config.ring_frames :])
            stream.bytes = sum(len(entry[3]) for entry in stream.ring)
            stream.seq = old.seq
            stream.tails = old.tails
        stream.bind(conn, self.worker)
        return stream

    def stop(self, charge_point_id: str) -> CaptureStream | None:
        """Switch capture off for an identity (its ring stays readable).

        Returns:
            Its stream, or None when it was never captured here.
        """
        stream = self.streams.get(charge_point_id)
        if stream is not None:
            stream.stop()
        return stream

    def get(self, charge_point_id: str) -> CaptureStream | None:
        """Returns: the identity's stream (on or off), or None."""
        return self.streams.get(charge_point_id)

    def records(self, entries: Iterable[Entry]) -> Iterator[dict[str, Any]]:
        """The trace records of captured frames, redacted by the configuration.

        Args:
            entries: captured frames.

        Yields:
            Their records, in order.
        """
        for entry in entries:
            yield from records(entry, self.redactor)

    def close(self) -> None:
        """Write what the files still wait for and end the writer thread."""
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def _new(
        self, charge_point_id: str, frames: int | None, seconds: float | None
    ) -> CaptureStream:
        cfg = self.config
        stream = CaptureStream(
            charge_point_id,
            cfg.ring_frames,
            frames,
            seconds,
            self.sink,
            self.worker,
            cfg.ring_bytes,
        )
        self.streams[charge_point_id] = stream
        self.streams.move_to_end(charge_point_id)
        while len(self.streams) > self.config.max_streams:
            victim = next((k for k, s in self.streams.items() if not s.active), None)
            if victim is None:
                victim = next(iter(self.streams))
            self.streams.pop(victim).stop()
        return stream
