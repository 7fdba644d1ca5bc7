"""A real `ocpp` library charge point's session through a capturing gateway: every frame on the
charge point's socket is in the trace, byte for byte and in order, in the ring and the files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from interop.conftest import Interop, LibraryCsms, fixtures, running_gateway
from kit import WAIT
from ocpp_gateway.server import RunningGateway

from ._support import check_record

VERSION = "ocpp1.6"


def _records(gateway: RunningGateway, charge_point_id: str) -> list[dict[str, Any]]:
    capture = gateway.runtime.capture
    stream = capture.get(charge_point_id)
    assert stream is not None
    return list(capture.records(list(stream.ring)))


async def test_every_frame_of_a_library_session_is_captured_byte_for_byte(
    library_csms: LibraryCsms, tmp_path: Path
) -> None:
    overrides = {
        "capture.charge_points": ["site7-*"],
        "capture.directory": str(tmp_path),
        "call_timeout": WAIT,
    }
    async with running_gateway(library_csms.url, **overrides) as gateway:
        setup = Interop(library_csms, gateway)
        client = await setup.connect("site7-a", VERSION)
        other = await setup.connect("site9-b", VERSION)
        try:
            for action in ("BootNotification", "Authorize", "StatusNotification", "Heartbeat"):
                await client.call(VERSION, action, fixtures(VERSION)[action]["request"])
            server = await library_csms.peer("site7-a")
            change = fixtures(VERSION)["ChangeConfiguration"]["request"]
            await server.call(VERSION, "ChangeConfiguration", change)
            await other.call(VERSION, "Heartbeat", {})
        finally:
            for peer in setup.clients:
                await peer.recorder.connection.close()
            await asyncio.gather(*(p.task for p in setup.clients), return_exceptions=True)
        found = _records(gateway, "site7-a")
        assert gateway.runtime.capture.get("site9-b") is None  # not selected
        sink = gateway.runtime.capture.sink
        assert sink is not None
        await asyncio.to_thread(sink.flush)
        files = sink.files("site7-a")
    for record in found:
        check_record(record)
        assert record["chargePointId"] == "site7-a"
        assert record["meta"]["verdict"] == "forwarded"
    sent = [r["raw"] for r in found if r["direction"] == "cp-to-csms"]
    received = [r["raw"] for r in found if r["direction"] == "csms-to-cp"]
    assert sent == client.recorder.sent and len(sent) == 5
    assert received == client.recorder.received and len(received) == 5
    assert [r["meta"]["seq"] for r in found] == list(range(1, 11))
    calls = [r["action"] for r in found if r["messageType"] == "CALL"]
    assert calls == [
        "BootNotification",
        "Authorize",
        "StatusNotification",
        "Heartbeat",
        "ChangeConfiguration",
    ]
    # The file holds the same records, one JSON object per line.
    assert len(files) == 1
    lines = (await asyncio.to_thread(Path(files[0]).read_bytes)).splitlines()
    assert [orjson.loads(line) for line in lines] == found
