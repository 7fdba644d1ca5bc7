"""The log lines an operator diagnoses from: connect, disconnect, refusal, upstream failure,
rejected frames at a bounded rate; JSON or text, with the worker id and no secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit import poll
from ocpp_gateway.logs import (
    FrameLog,
    JsonFormatter,
    TextFormatter,
    Throttle,
    redact_url,
    setup_logging,
)

from ._support import Csms, GatewayFactory, receive_frame


def _records(caplog: pytest.LogCaptureFixture, msg: str) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    found = [json.loads(formatter.format(r)) for r in caplog.records if r.getMessage() == msg]
    return found


async def test_connect_and_disconnect_lines_carry_what_happened(
    csms: Csms,
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    gateway = await gateway_factory(upstream__url=csms.url)
    ws = await client.ws_connect(f"{gateway.url}/ocpp/LOG1", protocols=("ocpp1.6",))
    for i in range(3):
        await ws.send_str(f'[2,"l{i}","Heartbeat",{{}}]')
        assert json.loads(await receive_frame(ws))[:2] == [3, f"l{i}"]
    [connected] = _records(caplog, "charge point connected")
    assert connected["charge_point_id"] == "LOG1" and connected["remote"] == "127.0.0.1"
    assert connected["subprotocol"] == "ocpp1.6"
    await ws.close()
    await poll(lambda: _records(caplog, "charge point disconnected"), "disconnect line")
    [line] = _records(caplog, "charge point disconnected")
    assert line["charge_point_id"] == "LOG1" and line["reason"] == "charge_point_closed"
    assert line["frames_from_charge_point"] == 3 and line["frames_to_charge_point"] == 3
    assert line["close_code"] == 1000 and line["duration"] >= 0
    assert line["subprotocol"] == "ocpp1.6" and line["remote"] == "127.0.0.1"


async def test_a_refusal_names_reason_id_and_address_but_never_the_password(
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
) -> None:
    from ocpp_gateway.security.passwords import hash_password

    credentials = tmp_path / "credentials.toml"
    credentials.write_text(f'"CP-P" = "{hash_password("right-password-1")}"\n')
    caplog.set_level(logging.INFO)
    gateway = await gateway_factory(security__credentials_file=str(credentials))
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect(
            f"{gateway.url}/ocpp/CP-P",
            protocols=("ocpp1.6",),
            headers={"Authorization": "Basic Q1AtUDp3cm9uZy1wYXNzd29yZC05"},  # CP-P:wrong-...
        )
    [line] = _records(caplog, "handshake refused")
    assert (line["charge_point_id"], line["remote"], line["status"]) == ("CP-P", "127.0.0.1", 401)
    assert line["reason"]
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert "wrong-password-9" not in text
    assert "Q1AtUDp3cm9uZy1wYXNzd29yZC05" not in text  # its Basic encoding


async def test_a_storm_of_refusals_is_logged_at_a_bounded_rate(
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refused handshakes (here: an identity too long) beyond the per-process budget are
    answered and counted, not written (`Throttle`, tested below, puts how many were left out
    on the next line written)."""
    from ocpp_gateway.admission import REFUSAL_LINES

    caplog.set_level(logging.INFO)
    gateway = await gateway_factory()
    attempts = REFUSAL_LINES + 20
    for _ in range(attempts):
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await client.ws_connect(f"{gateway.url}/ocpp/{'X' * 200}", protocols=("ocpp1.6",))
    lines = _records(caplog, "handshake refused")
    assert len(lines) == REFUSAL_LINES
    assert all("suppressed" not in line for line in lines)  # nothing was left out before them


async def test_an_upstream_refusal_logs_its_status_and_the_subprotocol(
    csms: Csms,
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    csms.refuse_status = 403
    gateway = await gateway_factory(upstream__url=csms.url)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect(f"{gateway.url}/ocpp/UP1", protocols=("ocpp2.0.1",))
    [line] = _records(caplog, "upstream connect failed")
    assert (line["status"], line["subprotocol"], line["charge_point_id"]) == (
        403,
        "ocpp2.0.1",
        "UP1",
    )
    # A CSMS that is not there at all: the errno.
    closed = await gateway_factory(upstream__url="ws://127.0.0.1:9/ocpp")
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect(f"{closed.url}/ocpp/UP2", protocols=("ocpp1.6",))
    [line] = [
        r for r in _records(caplog, "upstream connect failed") if r["charge_point_id"] == "UP2"
    ]
    assert line["errno"] == 111  # ECONNREFUSED


def test_rejected_frames_are_logged_at_a_bounded_rate_with_the_suppressed_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    frames = FrameLog(interval=3600, burst=3)
    for _ in range(10):
        frames.rejected("CP", "cp_to_csms", "Heartbeat", "FormationViolation", "$: not an object")
    assert len(_records(caplog, "frame rejected")) == 3
    throttle = Throttle(interval=10, burst=2)
    assert [throttle.allow(0.0) for _ in range(5)] == [0, 0, None, None, None]
    assert throttle.allow(10.0) == 3  # the next window's first line tells what was lost


async def test_an_invalid_frame_is_logged_with_its_error_code(
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    gateway = await gateway_factory()
    ws = await client.ws_connect(f"{gateway.url}/ocpp/BAD1", protocols=("ocpp1.6",))
    await ws.send_str('[2,"b1","Heartbeat",{"extra":1}]')
    assert json.loads(await receive_frame(ws))[0] == 4
    [line] = _records(caplog, "frame rejected")
    assert line["charge_point_id"] == "BAD1" and line["action"] == "Heartbeat"
    assert line["error_code"] and line["suppressed"] == 0
    await ws.close()


def test_every_line_carries_the_worker_and_text_format_scrubs_too() -> None:
    stream = io.StringIO()
    setup_logging("info", stream, fmt="text", worker=3)
    try:
        logging.getLogger("ocpp_gateway.test").info(
            "hello",
            extra={"password": "p4ss", "url": "ws://u:secret@h/x", "charge_point_id": "A B"},
        )
    finally:
        setup_logging("warning", io.StringIO())
    line = stream.getvalue().strip()
    assert "ocpp_gateway.test: hello" in line and "worker=3" in line
    assert 'charge_point_id="A B"' in line
    assert "p4ss" not in line and "secret" not in line
    stream = io.StringIO()
    setup_logging("info", stream, worker=1)
    try:
        logging.getLogger("ocpp_gateway.test").info("hi", extra={"admin_token": "tok-123"})
    finally:
        setup_logging("warning", io.StringIO())
    entry = json.loads(stream.getvalue())
    assert entry["worker"] == 1 and entry["admin_token"] == "***"
    assert isinstance(TextFormatter().format(logging.makeLogRecord({"msg": "x"})), str)
    with pytest.raises(ValueError, match="format"):
        setup_logging("info", io.StringIO(), fmt="xml")


# The pattern redact_url used before it became linear: the reference for what it must hide.
_QUADRATIC = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+:[^/@\s]*@")
_PIECES = ["a", "B", "1", "+", ":", "/", "@", " ", "://", "u:p@", "é", "\n", "."]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_redact_url_hides_what_the_old_pattern_hid(text: str) -> None:
    assert redact_url(text) == _QUADRATIC.sub(r"\g<scheme>***@", text)


def test_long_values_are_cut_and_text_values_with_control_characters_quoted() -> None:
    record = logging.makeLogRecord(
        {
            "name": "ocpp_gateway.test",
            "levelname": "INFO",
            "msg": "first\nsecond",
            "path": "/x\r\n2026-12-07T00:00:00.000Z info forged",
            "id": "a=b",
            "plain": "CP-1",
            "long": "B" * 10_000,
        }
    )
    text = TextFormatter().format(record)
    assert "\n" not in text and "\r" not in text
    assert "first\\nsecond" in text
    assert 'path="/x\\r\\n2026' in text and 'id="a=b"' in text and " plain=CP-1" in text
    entry = json.loads(JsonFormatter().format(record))
    assert len(entry["long"]) < 2100 and entry["long"].endswith("(7952 more characters)")
