"""Hostile clients against the admin listener and the logs (issue 19): each finding of the probe
(research/admin_security.md, F1-F9) as a regression test, on a real gateway over loopback with
`ocpp` library charge points as peers."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from yarl import URL

from kit import poll
from ocpp_gateway.cli import main as cli_main
from ocpp_gateway.config import load_config, token_problems
from ocpp_gateway.errors import ConfigError
from ocpp_gateway.logs import TextFormatter, redact_url
from ocpp_gateway.server import RunningGateway, start_gateway

from .admin_kit import (
    CP_BASIC,
    TOKEN,
    LogView,
    admin_port,
    assert_no_secret,
    exchange,
    first_status,
    http_port,
    request,
    start_admin_gateway,
    statuses,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
BEARER = b"Authorization: Bearer " + TOKEN.encode()


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[list[RunningGateway]]:
    started: list[RunningGateway] = []
    yield started
    for gateway in started:
        await gateway.stop(0.0)


@pytest.fixture
async def gateway(tmp_path: Path, gateways: list[RunningGateway]) -> RunningGateway:
    gw = await start_admin_gateway(tmp_path, credentials=True)
    gateways.append(gw)
    return gw


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> LogView:
    caplog.set_level(logging.DEBUG)
    return LogView(caplog)


class Charger(ChargePoint16):  # type: ignore[misc]  # the ocpp library is untyped
    """An `ocpp` library charge point that records the resets it gets and answers them, after
    `delay` seconds."""

    resets: list[str]
    delay: float = 0.0
    busy: int = 0
    most_busy: int = 0

    @on("Reset")  # type: ignore[untyped-decorator]
    async def on_reset(self, type: str) -> result16.Reset:
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        self.resets.append(type)
        await asyncio.sleep(self.delay)  # a slow charger (its own time, not a wait in the test)
        self.busy -= 1
        return result16.Reset(status="Accepted")


async def _charger(
    gateway: RunningGateway, charge_point_id: str, stack: list[asyncio.Task[None]], **kwargs: Any
) -> Charger:
    ws = await websockets.connect(
        f"{gateway.url}/ocpp/{quote(charge_point_id, safe='')}",
        subprotocols=[websockets.Subprotocol("ocpp1.6")],
        **kwargs,
    )
    charger = Charger(charge_point_id, ws)
    charger.resets = []
    stack.append(asyncio.create_task(charger.start()))
    await poll(lambda: charge_point_id in gateway.registry.live, f"{charge_point_id} connected")
    return charger


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- F1: redaction in linear time, bounded fields ----------------------------------------------


def test_redaction_hides_credentials_as_before() -> None:
    assert redact_url("ws://user:pw@host/x") == "ws://***@host/x"
    assert redact_url("see nats://a:b@n1:4222, redis://c:d@r:6379/0") == (
        "see nats://***@n1:4222, redis://***@r:6379/0"
    )
    assert redact_url("http://host/path") == "http://host/path"
    assert redact_url("1abc://u:p@h") == "1abc://***@h"  # the scheme starts at a letter


async def test_a_long_run_of_letters_is_logged_cut_short(
    gateway: RunningGateway, logs: LogView
) -> None:
    """F1 reproduction 2: a token-less request to /charge-points/<8000 letters>%3A%2F%2F. The
    refusal line holds the path cut short (the cost of the request is compared with an ordinary
    one in test_fuzz_http.py)."""
    path = b"/charge-points/" + b"A" * 8000 + b"%3A%2F%2F"
    answer = await exchange(admin_port(gateway), request(path))
    assert statuses(answer) == [401]
    [line] = [r for r in logs.caplog.records if r.getMessage() == "admin request refused"]
    assert len(line.__dict__["path"]) <= 200  # an extra of the log record
    assert all(len(text) < 3000 for text in logs.lines([line]))


# -- F2: the relay between workers asks for exactly the id --------------------------------------


async def test_a_rogue_id_never_steers_a_relayed_call_to_another_charger(
    tmp_path: Path, gateways: list[RunningGateway]
) -> None:
    """F2: two workers sharing a peer directory; W-a and rogue ids shaped like paths connect
    to worker 1, the API is asked on worker 0. Each Reset reaches the charger named, exactly,
    and genuine ids with `?`, `#`, `%`, `/` are found every time."""
    peer_dir = tmp_path / "peers"
    peer_dir.mkdir(mode=0o700)
    config = load_config(
        None,
        env={},
        overrides={
            "host": "127.0.0.1",
            "port": 0,
            "admin.port": 0,
            "admin.token": TOKEN,
            "drain_timeout": 0.0,
        },
    )
    asking = await start_gateway(config, worker=0, peer_dir=str(peer_dir))
    gateways.append(asking)
    holding = await start_gateway(config, worker=1, peer_dir=str(peer_dir))
    gateways.append(holding)
    tasks: list[asyncio.Task[None]] = []
    ids = ["W-a", "evil/../W-a", "W-a/calls#", "W-a/calls?", "Q?id", "H#frag", "pct%41", ".."]
    try:
        chargers = {cp: await _charger(holding, cp, tasks) for cp in ids}
        async with aiohttp.ClientSession() as client:
            for _ in range(3):
                for cp in ids:
                    segment = quote(cp, safe="").replace(".", "%2E")  # or clients resolve ".."
                    url = f"{asking.admin_url}/charge-points/{segment}"
                    async with client.get(URL(url, encoded=True), headers=AUTH) as resp:
                        assert resp.status == 200, cp
                        assert (await resp.json())["id"] == cp
                    async with client.post(
                        URL(url + "/calls", encoded=True),
                        headers=AUTH,
                        json={"action": "Reset", "payload": {"type": "Hard"}},
                    ) as resp:
                        assert resp.status == 200, (cp, await resp.text())
        for cp, charger in chargers.items():
            assert charger.resets == ["Hard"] * 3, cp
    finally:
        await _stop(tasks)


# -- F3: no secret in a log line or an error body -----------------------------------------------


@pytest.mark.parametrize("tail", [b"\r", b"\x00", b"\x01", b"\x08", b"\x0b", b"\x1b", b"\x7f"])
async def test_a_token_with_a_control_character_is_neither_logged_nor_echoed(
    gateway: RunningGateway, logs: LogView, tail: bytes
) -> None:
    """F3: curl with a token file with CRLF endings sends `...token\\r\\r\\n`; aiohttp's parser
    refuses the line. 400, with a fixed body and a log line without the header."""
    answer = await exchange(admin_port(gateway), request(b"/charge-points", BEARER + tail))
    assert statuses(answer) == [400]
    assert_no_secret(answer, logs.text())
    assert logs.count("bad http request") == 1
    assert "Traceback" not in logs.text()
    metrics = gateway.metrics.admin_refused
    assert metrics.labels("bad_request")._value.get() == 1


@pytest.mark.parametrize("tail", [b"\x00", b"\r"])
async def test_basic_credentials_ending_in_nul_or_cr_stay_out_of_the_log(
    gateway: RunningGateway, logs: LogView, tail: bytes
) -> None:
    """F3 on the charge point port: a NUL-terminated Basic header from firmware."""
    upgrade = request(
        b"/ocpp/CP-1",
        b"Upgrade: websocket",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Protocol: ocpp1.6",
        b"Authorization: Basic " + CP_BASIC.encode() + tail,
    ).replace(b"Connection: close", b"Connection: Upgrade")
    answer = await exchange(http_port(gateway), upgrade)
    assert statuses(answer) == [400]
    assert_no_secret(answer, logs.text())
    refused = gateway.metrics.handshakes_refused.labels("bad_request")._value.get()
    assert refused == 1


# -- F4: idle, header and body timeouts; a connection cap ---------------------------------------


async def test_idle_and_slow_head_connections_are_closed(
    tmp_path: Path, gateways: list[RunningGateway]
) -> None:
    """F4: an idle socket and one sending its head a byte at a time are both closed by the
    admin listener's idle timeout (they stayed open past 100 s before)."""
    gateway = await start_admin_gateway(tmp_path, admin__idle_timeout=0.5)
    gateways.append(gateway)
    started = time.monotonic()
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", admin_port(gateway))
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", admin_port(gateway))
    head = request(b"/healthz")
    sent = [0]

    async def trickle() -> None:
        for byte in head:
            slow_writer.write(bytes([byte]))
            sent[0] += 1
            await asyncio.sleep(0.1)  # the client's pace (slowloris), not a wait for the server

    trickling = asyncio.create_task(trickle())
    try:
        async with asyncio.timeout(10):
            assert await idle_reader.read(-1) == b""
            assert await slow_reader.read(-1) == b""  # closed, never answered
        assert time.monotonic() - started < 10
        assert sent[0] < len(head)  # before its head was complete
    finally:
        trickling.cancel()
        for writer in (idle_writer, slow_writer):
            writer.close()


async def test_a_slow_body_gets_408(tmp_path: Path, gateways: list[RunningGateway]) -> None:
    gateway = await start_admin_gateway(tmp_path, admin__body_timeout=0.3)
    gateways.append(gateway)
    reader, writer = await asyncio.open_connection("127.0.0.1", admin_port(gateway))
    try:
        writer.write(
            request(
                b"/charge-points/CP/calls",
                BEARER,
                b"Content-Type: application/json",
                b"Content-Length: 50",
                method=b"POST",
            )
            + b'{"action":'
        )
        async with asyncio.timeout(10):
            answer = await reader.readuntil(b"\r\n")
        assert statuses(answer) == [408]
        assert gateway.metrics.admin_refused.labels("body_timeout")._value.get() == 1
    finally:
        writer.close()


async def test_the_connection_cap_refuses_the_excess_and_the_port_recovers(
    tmp_path: Path, gateways: list[RunningGateway], logs: LogView
) -> None:
    """F4: idle sockets beyond `admin.max_connections` are refused at once with 503 (counted,
    logged at a bounded rate), the charge point port is untouched, and the admin port serves
    again once they go."""
    gateway = await start_admin_gateway(tmp_path, admin__max_connections=5)
    gateways.append(gateway)
    held = [await asyncio.open_connection("127.0.0.1", admin_port(gateway)) for _ in range(5)]
    await poll(lambda: gateway.runtime is not None and _open(gateway) == 5, "5 held")
    try:
        answers = await asyncio.gather(
            *(exchange(admin_port(gateway), request(b"/healthz")) for _ in range(30))
        )
        assert all(statuses(answer) == [503] for answer in answers)
        refused = gateway.metrics.admin_refused.labels("connection_limit")._value.get()
        assert refused == 30
        assert 1 <= logs.count("connection refused: too many open") <= 10
        # The charge point port still serves.
        assert statuses(await exchange(http_port(gateway), request(b"/healthz"))) == [200]
    finally:
        for _, writer in held:
            writer.close()
    await poll(lambda: _open(gateway) == 0, "held sockets gone")
    assert statuses(await exchange(admin_port(gateway), request(b"/healthz"))) == [200]


async def test_one_address_cannot_take_every_place(
    tmp_path: Path, gateways: list[RunningGateway]
) -> None:
    """Idle sockets from one address stop at `admin.max_connections_per_ip`; another address
    (a probe) still gets in."""
    gateway = await start_admin_gateway(
        tmp_path, admin__max_connections=10, admin__max_connections_per_ip=3
    )
    gateways.append(gateway)
    port = admin_port(gateway)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    await poll(lambda: _open(gateway) == 3, "3 held")
    try:
        assert statuses(await exchange(port, request(b"/healthz"))) == [503]
        assert gateway.metrics.admin_refused.labels("address_limit")._value.get() == 1
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=("127.0.0.2", 0)
        )
        writer.write(request(b"/healthz"))
        async with asyncio.timeout(10):
            assert statuses(await reader.read(-1)) == [200]
        writer.close()
    finally:
        for _, held_writer in held:
            held_writer.close()


def test_the_guard_counts_per_listener_and_per_address() -> None:
    from ocpp_gateway.listener import ListenerGuard

    refused: list[str] = []
    guard = ListenerGuard("admin", refused.append, max_connections=3, max_per_address=2)
    assert [guard.admit("a"), guard.admit("a"), guard.admit("a")] == [None, None, "address_limit"]
    assert guard.admit("b") is None
    assert guard.admit("c") == "connection_limit"
    guard.release("a")
    assert guard.admit("c") is None and guard.open == 3
    for address in ("a", "b", "c"):
        guard.release(address)
    assert guard.open == 0 and guard.admit("a") is None


def _open(gateway: RunningGateway) -> int:
    runner: Any = gateway._admin_runner
    return int(runner.guard.open)


# -- F5: token throttling, bounded refusal lines, weak tokens -----------------------------------


async def test_wrong_tokens_are_throttled_per_address_with_bounded_lines(
    tmp_path: Path, gateways: list[RunningGateway], logs: LogView
) -> None:
    gateway = await start_admin_gateway(tmp_path, admin__token_failures_per_minute=5)
    gateways.append(gateway)
    url = f"{gateway.admin_url}/charge-points"
    seen: list[int] = []
    async with aiohttp.ClientSession() as client:
        for i in range(200):
            wrong = {"Authorization": f"Bearer guess-{i:04d}-0123456789ab"}
            async with client.get(url, headers=wrong) as resp:
                seen.append(resp.status)
        # Over the budget, even the right token waits: guesses cannot go on meanwhile.
        async with client.get(url, headers=AUTH) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"].isdigit()
    assert seen[:5] == [401] * 5 and set(seen[5:]) == {429}
    refused = gateway.metrics.admin_refused
    assert refused.labels("bad_token")._value.get() == 5
    assert refused.labels("throttled")._value.get() == 196
    lines = logs.count("admin request refused")
    assert 5 <= lines <= 20  # REFUSAL_LINES per 10 s
    # Another address is not locked out (the throttle is per address).
    assert gateway.runtime is not None


@pytest.mark.parametrize(
    "token",
    [" " * 16, "a" * 16, "abababababababab", "short-token", "token with spaces ok?", "tab\tx" * 4],
)
def test_weak_tokens_are_refused_by_check_config_and_serve(
    token: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """F5: check-config accepted 16 spaces (a token that never matches: the given one is
    stripped) and 16 times the same letter."""
    assert token_problems(token)
    with pytest.raises(ConfigError, match=r"admin\.token"):
        load_config(None, env={"OCPP_GATEWAY_ADMIN__TOKEN": token})
    monkeypatch.setenv("OCPP_GATEWAY_ADMIN__TOKEN", token)
    assert cli_main(["check-config"]) == 1
    assert "admin.token:" in capsys.readouterr().out
    assert cli_main(["serve", "--host", "127.0.0.1", "--port", "0"]) == 2
    assert "admin.token:" in capsys.readouterr().err


def test_a_generated_token_is_accepted() -> None:
    import secrets

    for _ in range(200):
        assert token_problems(secrets.token_urlsafe(16)) == []
        assert token_problems(secrets.token_hex(8)) == []


# -- F6: 4xx, not 500, for undecodable headers and over-deep payloads ---------------------------


@pytest.mark.parametrize("byte", [0x80, 0xC3, 0xE9, 0xFF])
async def test_a_high_byte_in_authorization_gets_401_without_a_traceback(
    gateway: RunningGateway, logs: LogView, byte: int
) -> None:
    header = b"Authorization: Bearer " + TOKEN.encode()[:-1] + bytes([byte])
    answer = await exchange(admin_port(gateway), request(b"/charge-points", header))
    assert statuses(answer) == [401]
    assert "Traceback" not in logs.text()
    assert logs.count("admin request refused") == 1


@pytest.mark.parametrize("byte", [0x80, 0xE9, 0xFF])
async def test_a_high_byte_in_a_basic_header_gets_401_on_the_charge_point_port(
    gateway: RunningGateway, logs: LogView, byte: int
) -> None:
    upgrade = request(
        b"/ocpp/CP-1",
        b"Upgrade: websocket",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Protocol: ocpp1.6",
        b"Authorization: Basic " + CP_BASIC.encode()[:-2] + bytes([byte]),
    ).replace(b"Connection: close", b"Connection: Upgrade")
    assert await first_status(http_port(gateway), upgrade) == 401
    assert "Traceback" not in logs.text()
    assert_no_secret(logs.text())


@pytest.mark.parametrize("depth", [254, 300, 600, 1022])
async def test_an_over_deep_payload_gets_400_and_nothing_is_sent(
    gateway: RunningGateway, logs: LogView, depth: int
) -> None:
    tasks: list[asyncio.Task[None]] = []
    credentials = aiohttp.encode_basic_auth("CP-1", "the-password-of-CP-1!")
    try:
        charger = await _charger(
            gateway, "CP-1", tasks, additional_headers={"Authorization": credentials}
        )
        nested = "[" * (depth - 2) + '"x"' + "]" * (depth - 2)  # orjson writes 254 levels
        body = '{"action": "DataTransfer", "payload": {"vendorId": "v", "data": ' + nested + "}}"
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                f"{gateway.admin_url}/charge-points/CP-1/calls",
                headers=AUTH,
                data=body,
            ) as resp,
        ):
            assert resp.status == 400, await resp.text()
        assert "Traceback" not in logs.text()
        assert charger.resets == []
        assert gateway.registry.live["CP-1"].session.pending() == 0
    finally:
        await _stop(tasks)


# -- F7: text logs cannot be forged -------------------------------------------------------------


async def test_cr_lf_in_an_admin_path_stays_on_one_text_line(
    gateway: RunningGateway, logs: LogView
) -> None:
    forged = b"/charge-points/x%0A2026-12-07T07:40:00.000Z%09warning%09ocpp_gateway.admin%3A"
    answer = await exchange(admin_port(gateway), request(forged))
    assert statuses(answer) == [401]
    [record] = [r for r in logs.caplog.records if r.getMessage() == "admin request refused"]
    text = TextFormatter().format(record)
    assert "\n" not in text and "\r" not in text
    assert re.search(r'path="/charge-points/x\\n2026', text)


@pytest.mark.parametrize("raw_id", ["a%0Aforged%09line", "a%0Dx", "nul%00", "del%7F"])
async def test_a_charge_point_id_with_a_control_character_is_refused(
    gateway: RunningGateway, logs: LogView, raw_id: str
) -> None:
    upgrade = request(
        f"/ocpp/{raw_id}".encode(),
        b"Upgrade: websocket",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Protocol: ocpp1.6",
    ).replace(b"Connection: close", b"Connection: Upgrade")
    assert await first_status(http_port(gateway), upgrade) == 400
    for line in logs.lines():
        assert "\n" not in line and "\r" not in line


# -- F8: one gateway call in flight per charger, a bounded queue --------------------------------


async def test_admin_calls_to_one_charger_go_one_at_a_time(
    tmp_path: Path, gateways: list[RunningGateway]
) -> None:
    """OCPP-J 1.6 §4.1.1: a second CALL waits until the first is answered. Five concurrent
    Resets to a charger that takes 0.2 s each: it never has two at once, all five succeed."""
    gateway = await start_admin_gateway(tmp_path)
    gateways.append(gateway)
    tasks: list[asyncio.Task[None]] = []
    try:
        charger = await _charger(gateway, "SLOW", tasks)
        charger.delay = 0.2
        url = f"{gateway.admin_url}/charge-points/SLOW/calls"
        async with aiohttp.ClientSession() as client:

            async def reset() -> int:
                body = {"action": "Reset", "payload": {"type": "Soft"}}
                async with client.post(url, headers=AUTH, json=body) as resp:
                    return resp.status

            assert await asyncio.gather(*(reset() for _ in range(5))) == [200] * 5
        assert charger.resets == ["Soft"] * 5
        assert charger.most_busy == 1
    finally:
        await _stop(tasks)


async def test_calls_beyond_the_queue_get_429_and_one_is_in_flight(
    tmp_path: Path, gateways: list[RunningGateway]
) -> None:
    """F8: 40 concurrent calls to a charger that never answers: one CALL reaches it, 16 wait,
    the rest get 429 at once; the waiting ones end with 504 at call_timeout, never sent."""
    gateway = await start_admin_gateway(
        tmp_path,
        call_timeout=1.0,
        admin__max_connections_per_ip=0,  # 40 clients on loopback
    )
    gateways.append(gateway)
    async with (
        aiohttp.ClientSession() as client,
        client.ws_connect(f"{gateway.url}/ocpp/MUTE", protocols=("ocpp1.6",)) as ws,
    ):
        await poll(lambda: "MUTE" in gateway.registry.live, "MUTE connected")
        url = f"{gateway.admin_url}/charge-points/MUTE/calls"

        async def clear() -> int:
            body = {"action": "ClearCache", "payload": {}}
            async with client.post(url, headers=AUTH, json=body) as resp:
                return resp.status

        results = await asyncio.gather(*(clear() for _ in range(40)))
        assert results.count(429) == 40 - 17
        assert results.count(504) == 17
        frames = []
        while True:
            try:
                msg = await ws.receive(timeout=0.05)
            except TimeoutError:
                break
            frames.append(json.loads(msg.data))
        # Each call that reached its turn went out only after the previous one timed out:
        # at most one per call_timeout, here the first one (the rest timed out queued).
        assert 1 <= len(frames) <= 2 and all(f[2] == "ClearCache" for f in frames)
        assert gateway.metrics.admin_refused.labels("queue_full")._value.get() == 23


# -- F9: settings that cannot take effect, banners, the default host ----------------------------


def test_metrics_off_the_main_port_without_an_admin_port_is_refused() -> None:
    with pytest.raises(ConfigError, match="metrics_on_main_port"):
        load_config(None, env={"OCPP_GATEWAY_METRICS_ON_MAIN_PORT": "false"})
    config = load_config(
        None, env={"OCPP_GATEWAY_METRICS_ON_MAIN_PORT": "false", "OCPP_GATEWAY_ADMIN__PORT": "0"}
    )
    assert config.admin.host == "127.0.0.1"  # loopback unless the operator says otherwise


async def test_no_response_carries_a_version_banner(gateway: RunningGateway) -> None:
    answers = [
        await exchange(admin_port(gateway), request(b"/healthz")),
        await exchange(admin_port(gateway), request(b"/charge-points")),
        await exchange(admin_port(gateway), request(b"/nowhere")),
        await exchange(admin_port(gateway), request(b"/x", b"X-A: \x01")),
        await exchange(http_port(gateway), request(b"/healthz")),
        await exchange(http_port(gateway), request(b"/ocpp/CP-9")),
        await exchange(http_port(gateway), b"BREW /x HTCPCP/1.0\r\n\r\n"),
    ]
    for answer in answers:
        assert statuses(answer), answer
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert b"aiohttp" not in head and b"python" not in head, head


async def test_a_warning_when_the_token_crosses_the_network_in_clear(
    tmp_path: Path, gateways: list[RunningGateway], logs: LogView
) -> None:
    gateway = await start_admin_gateway(tmp_path, admin__host="0.0.0.0")
    gateways.append(gateway)
    assert any("plain http beyond loopback" in r.getMessage() for r in logs.caplog.records)
