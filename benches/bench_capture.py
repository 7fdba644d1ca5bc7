"""What capture costs per frame when it is on: the relay's hook, and the record building that the
writer thread (or an API read) does later, beside the Session's own judging as a baseline.

Run: `pytest benches/bench_capture.py -p benchmark --benchmark-only`. Each timed function
handles one round trip (a MeterValues CALL and its CALLRESULT) so the numbers compare with
`bench_core.py`'s `core` rows:

- `judge`: the Session judging both frames (what every frame costs anyway);
- `judge_and_hook`: the same, plus the capture hook of both frames (ring, no files, no tail);
- `judge_hook_and_queue`: plus handing both frames to the file writer's queue (the thread is
  not running, so nothing is written; the queue is emptied outside the timing);
- `records`: building both frames' Open OCPP Trace records and JSON lines, with the default
  redaction: the work the writer thread does per round trip, off the event loop.

Each function checks its result (both frames forwarded, two records), so a broken path fails.
"""

from __future__ import annotations

import queue
from time import monotonic
from typing import Any

import orjson
import pytest

from ocpp_gateway.capture import Capture, CaptureConfig, CaptureStream, FileSink
from ocpp_gateway.config import load_config
from ocpp_gateway.runtime import Runtime

CALL = orjson.dumps(
    [
        2,
        "mv-1",
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 42,
            "meterValue": [
                {
                    "timestamp": "2026-12-07T08:00:00Z",
                    "sampledValue": [
                        {
                            "value": "1234.5",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                        },
                        {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"},
                    ],
                }
            ],
        },
    ]
)
RESULT = b'[3,"mv-1",{}]'


class _Conn:
    charge_point_id = "CP-1"
    version = "ocpp1.6"
    links: dict[str, Any] = {}
    call_origin: dict[str, str] = {}
    connected_at = 1_765_000_000.0
    capture: CaptureStream | None = None


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(load_config(None, {}, {}))


def _round_trip(session: Any, stream: CaptureStream | None) -> None:
    now = monotonic()
    call = session.from_charge_point(CALL, now)
    if stream is not None:
        stream.from_charge_point(CALL, call)
    result = session.from_csms(RESULT, now)
    if stream is not None:
        stream.from_backend(RESULT, result, "default")
    assert call.forward and result.forward


def test_judge(benchmark: Any, runtime: Runtime) -> None:
    session = runtime.new_session("ocpp1.6")
    benchmark(_round_trip, session, None)


def test_judge_and_hook(benchmark: Any, runtime: Runtime) -> None:
    session = runtime.new_session("ocpp1.6")
    stream = CaptureStream("CP-1", 2000, None, None, None)
    stream.bind(_Conn(), 0)
    benchmark(_round_trip, session, stream)
    assert len(stream.ring) == 2000


def test_judge_hook_and_queue(benchmark: Any, runtime: Runtime, tmp_path: Any) -> None:
    session = runtime.new_session("ocpp1.6")
    sink = FileSink(str(tmp_path), 0, 1 << 30, 3600.0, 2, 1 << 30, None)
    sink.close()  # the thread ends: queued frames stay in the queue, nothing is written
    sink._queue = queue.Queue()  # an unbounded one, emptied between rounds
    stream = CaptureStream("CP-1", 2000, None, None, sink)
    stream.bind(_Conn(), 0)

    def setup() -> tuple[tuple[Any, CaptureStream], dict[str, Any]]:
        sink._queue = queue.Queue()
        return (session, stream), {}

    benchmark.pedantic(_round_trip, setup=setup, rounds=20_000, iterations=1)
    assert sink.dropped == 0


def test_records(benchmark: Any, runtime: Runtime) -> None:
    session = runtime.new_session("ocpp1.6")
    capture = Capture(CaptureConfig())
    stream = CaptureStream("CP-1", 4, None, None, None)
    stream.bind(_Conn(), 0)
    _round_trip(session, stream)
    entries = list(stream.ring)

    def build() -> int:
        lines = [orjson.dumps(r) + b"\n" for r in capture.records(entries)]
        return len(lines)

    assert benchmark(build) == 2
