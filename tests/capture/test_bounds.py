"""The ring and the trace files stay within their bounds under a 10,000-frame burst; the
frame and time bounds switch capture off; the selection by id and glob."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from time import monotonic
from typing import Any

import orjson

from ocpp_gateway.capture import Capture, CaptureConfig, CaptureStream, FileSink, TraceIdentity
from ocpp_gateway.capture.sink import folder_name

from ._support import session

BURST = 10_000


def _frames() -> list[tuple[bytes, Any]]:
    s = session()
    out = []
    for n in range(BURST):
        frame = orjson.dumps([2, f"h-{n}", "Heartbeat", {}])
        out.append((frame, s.from_charge_point(frame, monotonic())))
        s.from_csms(orjson.dumps([3, f"h-{n}", {"currentTime": "2026-01-01T00:00:00Z"}]), 0.0)
    return out


class _Conn:
    """What a stream reads of a connection (the relay's `Connection`)."""

    def __init__(self, charge_point_id: str) -> None:
        self.charge_point_id = charge_point_id
        self.version = "ocpp1.6"
        self.links: dict[str, Any] = {}
        self.call_origin: dict[str, str] = {}
        self.connected_at = 1_765_000_000.0
        self.capture: CaptureStream | None = None


def test_ring_and_files_stay_within_bounds(tmp_path: Path) -> None:
    sink = FileSink(str(tmp_path), 0, 64 * 1024, 3600.0, 3, BURST + 10, None)
    stream = CaptureStream("CP-1", 500, None, None, sink)
    conn = _Conn("CP-1")
    stream.bind(conn, 0)
    for frame, verdict in _frames():
        stream.from_charge_point(frame, verdict)
    sink.flush()
    assert len(stream.ring) == 500 and stream.ring[-1][0] == BURST
    files = sink.files("CP-1")
    assert len(files) == 3  # the oldest were removed
    sizes = [os.path.getsize(f) for f in files]
    line = max(len(x) for f in files for x in Path(f).read_bytes().splitlines()) + 1
    assert all(size < 64 * 1024 + 512 * line for size in sizes), sizes
    last = orjson.loads(Path(files[-1]).read_bytes().splitlines()[-1])
    assert last["messageId"] == f"h-{BURST - 1}" and last["meta"]["seq"] == BURST
    assert sink.dropped == 0 and sink.written == BURST
    sink.close()


def test_a_full_writer_queue_leaves_frames_out_and_counts_them(tmp_path: Path) -> None:
    sink = FileSink(str(tmp_path), 0, 1 << 30, 3600.0, 3, 100, None)
    stream = CaptureStream("CP-1", 100, None, None, sink)
    stream.bind(_Conn("CP-1"), 0)
    for frame, verdict in _frames():
        stream.from_charge_point(frame, verdict)
    sink.flush()
    assert sink.dropped + sink.written == BURST and sink.written >= 100
    lines = Path(sink.files("CP-1")[0]).read_bytes().splitlines()
    assert len(lines) == sink.written
    sink.close()


def test_the_frame_bound_switches_capture_off() -> None:
    stream = CaptureStream("CP-1", 100, 3, None, None)
    conn = _Conn("CP-1")
    stream.bind(conn, 0)
    assert conn.capture is stream
    for frame, verdict in _frames()[:5]:
        if conn.capture is not None:  # as the relay does
            conn.capture.from_charge_point(frame, verdict)
    assert len(stream.ring) == 3 and not stream.active and conn.capture is None


def test_the_time_bound_switches_capture_off() -> None:
    stream = CaptureStream("CP-1", 100, None, 0.0, None)
    conn = _Conn("CP-1")
    stream.bind(conn, 0)
    frame, verdict = _frames()[0]
    stream.from_charge_point(frame, verdict)
    assert stream.expired() and conn.capture is None and len(stream.ring) == 1


def test_selection_by_id_and_glob_and_the_stream_limit() -> None:
    capture = Capture(CaptureConfig(charge_points=("CP-1", "site7-*"), max_streams=2))
    assert capture.selected("CP-1") and capture.selected("site7-04")
    assert not capture.selected("CP-10") and not capture.selected("site8-1")
    for name in ("CP-1", "site7-a", "site7-b"):
        conn = _Conn(name)
        capture.attach(conn)
        assert conn.capture is not None
    assert list(capture.streams) == ["site7-a", "site7-b"]  # at most max_streams kept
    ignored = _Conn("other")
    capture.attach(ignored)
    assert ignored.capture is None


def test_folder_names_are_single_safe_components() -> None:
    for name in ("..", ".", "a/b", "../etc", "CP 1"):
        folder = folder_name(name)
        assert "/" not in folder and folder not in (".", "..") and not folder.startswith(".")


async def test_a_live_tail_gets_each_frame_and_a_slow_one_is_counted() -> None:
    stream = CaptureStream("CP-1", 100, None, None, None)
    stream.bind(_Conn("CP-1"), 0)
    tail = stream.tail()
    frames = _frames()[:1100]
    for frame, verdict in frames:
        stream.from_charge_point(frame, verdict)
    got = await asyncio.wait_for(tail.get(), 5)
    assert got[3] == frames[0][0]
    assert tail.qsize() == 1023 and stream.lagged == 1100 - 1024
    stream.untail(tail)
    assert stream.tails == []


def test_identity_fields() -> None:
    ident = TraceIdentity("CP-1", "ocpp2.0.1", 7, 2)
    assert (ident.ocpp_version, ident.epoch, ident.worker) == ("2.0.1", 7, 2)


def test_the_ring_is_bounded_in_bytes_too() -> None:
    stream = CaptureStream("CP-1", 10_000, None, None, None, ring_bytes=4096)
    stream.bind(_Conn("CP-1"), 0)
    frames = _frames()[:1000]
    for frame, verdict in frames:
        stream.from_charge_point(frame, verdict)
    assert stream.bytes == sum(len(e[3]) for e in stream.ring) <= 4096
    assert stream.bytes > 4096 - len(frames[-1][0]) and stream.ring[-1][3] == frames[-1][0]
    assert stream.status()["ring_bytes"] == stream.bytes


def test_frames_left_out_of_the_files_are_counted_per_stream(tmp_path: Path) -> None:
    sink = FileSink(str(tmp_path), 0, 1 << 30, 3600.0, 3, 10, None)
    sink.close()  # no writer: the queue fills up
    stream = CaptureStream("CP-1", 100, None, None, sink)
    stream.bind(_Conn("CP-1"), 0)
    for frame, verdict in _frames()[:25]:
        stream.from_charge_point(frame, verdict)
    assert stream.status()["files_dropped"] == 15 == sink.dropped


def test_a_new_connection_of_the_identity_takes_the_stream_over() -> None:
    stream = CaptureStream("CP-1", 100, None, None, None)
    old, new = _Conn("CP-1"), _Conn("CP-1")
    stream.bind(old, 0)
    stream.bind(new, 0)
    assert old.capture is None and new.capture is stream
