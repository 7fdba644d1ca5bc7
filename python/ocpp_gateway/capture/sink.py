"""The trace file sink: a writer thread fed by a bounded queue, rotating JSONL files per identity.

The relay's hook only puts the captured entry in the queue (`put`, never blocking); the thread
builds the records (redaction included) and writes them, so no JSON encoding or disk write
happens on the event loop. When the queue is full the entry is left out of the files and
counted (`dropped`): a slow disk never slows the relay.

Layout: `<directory>/<charge point id, percent-encoded>/<UTC start>-w<worker>-<n>.jsonl`. A file
is closed and a new one begun when it passes `max_bytes` or `max_seconds`; beyond `keep` files
of this worker in a charge point's folder, the oldest are removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from typing import IO
from urllib.parse import quote

import orjson

from ocpp_gateway.capture.record import Entry, records
from ocpp_gateway.capture.redact import Redactor
from ocpp_gateway.logs import Throttle

__all__ = ["FileSink", "folder_name"]

log = logging.getLogger("ocpp_gateway.capture")

_BATCH = 512
_OPEN_FILES = 64


def folder_name(charge_point_id: str) -> str:
    """Args:
        charge_point_id: an identity.

    Returns:
        A safe single path component for it (percent-encoded; never "." or "..").
    """
    name = quote(charge_point_id, safe="-_")
    return name.replace(".", "%2E")


class _File:
    __slots__ = ("handle", "opened", "path", "size")

    def __init__(self, path: str, handle: IO[bytes], opened: float) -> None:
        self.path = path
        self.handle = handle
        self.opened = opened
        self.size = 0


class FileSink:
    """Rotating JSONL trace files, written by one thread.

    Args:
        directory: the root folder (created when missing).
        worker: the gateway worker id (in the file names).
        max_bytes, max_seconds: when a file is rotated.
        keep: files kept per charge point and worker.
        queue_frames: entries the queue holds.
        redactor: the redaction rules, or None.
    """

    def __init__(
        self,
        directory: str,
        worker: int,
        max_bytes: int,
        max_seconds: float,
        keep: int,
        queue_frames: int,
        redactor: Redactor | None,
    ) -> None:
        self.directory = directory
        self._worker = worker
        self._max_bytes = max_bytes
        self._max_seconds = max_seconds
        self._keep = keep
        self._redactor = redactor
        self._queue: queue.Queue[Entry | None] = queue.Queue(queue_frames)
        self._failures = Throttle(60.0, 5)  # log lines of a failing writer
        self._files: OrderedDict[str, _File] = OrderedDict()
        self._counter = 0
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="capture-writer", daemon=True)
        self._thread.start()

    def put(self, entry: Entry) -> bool:
        """Queue a captured frame for the files (never blocks; counted when full).

        Args:
            entry: the frame.

        Returns:
            False when the queue was full and the frame is left out of the files.
        """
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def flush(self) -> None:
        """Block until every queued frame is written (tests, shutdown)."""
        self._queue.join()

    def close(self) -> None:
        """Write what is queued, close the files and end the thread."""
        self._queue.put(None)
        self._thread.join()

    def files(self, charge_point_id: str) -> list[str]:
        """Args:
            charge_point_id: an identity.

        Returns:
            Its trace files of every worker, oldest first.
        """
        folder = os.path.join(self.directory, folder_name(charge_point_id))
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".jsonl"))
        except OSError:
            return []
        return [os.path.join(folder, name) for name in names]

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        get = self._queue.get
        while True:
            entry = get()
            batch = [entry]
            while entry is not None and len(batch) < _BATCH:
                try:
                    entry = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(entry)
            try:
                self._write(batch)
            except Exception:
                # A full disk fails every batch: a few lines per minute, not one per batch.
                suppressed = self._failures.allow(time.monotonic())
                if suppressed is not None:
                    log.exception("capture writer failed", extra={"suppressed": suppressed})
            for _ in batch:
                self._queue.task_done()
            if batch[-1] is None:
                for file in self._files.values():
                    file.handle.close()
                self._files.clear()
                return

    def _write(self, batch: list[Entry | None]) -> None:
        touched: set[_File] = set()
        for entry in batch:
            if entry is None:
                continue
            ident = entry[6]
            lines = b"".join(orjson.dumps(r) + b"\n" for r in records(entry, self._redactor))
            file = self._file(ident.charge_point_id, entry[1])
            if file is None:
                continue
            file.handle.write(lines)
            file.size += len(lines)
            self.written += 1
            touched.add(file)
        for file in touched:
            if not file.handle.closed:  # a rotated one was flushed by its close
                file.handle.flush()

    def _file(self, charge_point_id: str, moment: float) -> _File | None:
        file = self._files.get(charge_point_id)
        if file is not None and (
            file.size >= self._max_bytes or moment - file.opened >= self._max_seconds
        ):
            file.handle.close()
            del self._files[charge_point_id]
            file = None
        if file is not None:
            self._files.move_to_end(charge_point_id)
            return file
        folder = os.path.join(self.directory, folder_name(charge_point_id))
        self._counter += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(moment))
        path = os.path.join(folder, f"{stamp}-w{self._worker}-{self._counter:06d}.jsonl")
        try:
            os.makedirs(folder, exist_ok=True)
            handle = open(path, "ab")  # noqa: SIM115 (kept open across batches)
        except OSError as exc:
            log.warning("cannot write a trace file", extra={"path": path, "error": str(exc)})
            return None
        file = self._files[charge_point_id] = _File(path, handle, moment)
        if len(self._files) > _OPEN_FILES:
            _, oldest = self._files.popitem(last=False)
            oldest.handle.close()
        self._prune(folder)
        return file

    def _prune(self, folder: str) -> None:
        """Remove this worker's oldest files of a charge point beyond `keep`."""
        tag = f"-w{self._worker}-"
        try:
            names = sorted(n for n in os.listdir(folder) if tag in n and n.endswith(".jsonl"))
        except OSError:
            return
        for name in names[: max(0, len(names) - self._keep)]:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
