"""Limits before the TLS handshake (`ocpp_gateway.gate`): the gate's decisions as a table, then
a real gateway under a handshake flood and a slowloris from other addresses while established
charge points keep being answered."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import ClientConnection, connect

from kit import poll
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.gate import GatedSite, GateLimits, HandshakeGate
from ocpp_gateway.security import SecurityConfig
from ocpp_gateway.server import RunningGateway, start_gateway

from .conftest import Pki, client_ssl_context

TIMEOUT = 10.0


# (limits, steps): each step is (address, time, "admit" | "done", expected refusal or None).
GATE_TABLE: list[tuple[str, GateLimits, list[tuple[str, float, str, str | None]]]] = [
    (
        "no limits admit everything",
        GateLimits(),
        [("a", 0.0, "admit", None)] * 50,
    ),
    (
        "in flight in all",
        GateLimits(in_flight=2),
        [
            ("a", 0.0, "admit", None),
            ("b", 0.0, "admit", None),
            ("c", 0.0, "admit", "tls_in_flight"),
            ("a", 0.1, "done", None),
            ("c", 0.1, "admit", None),
        ],
    ),
    (
        "in flight per address, other addresses unaffected",
        GateLimits(in_flight_per_address=2),
        [
            ("a", 0.0, "admit", None),
            ("a", 0.0, "admit", None),
            ("a", 0.0, "admit", "tls_address_in_flight"),
            ("b", 0.0, "admit", None),
            ("a", 0.5, "done", None),
            ("a", 0.5, "admit", None),
        ],
    ),
    (
        "rate per address: five seconds of burst, then the rate",
        GateLimits(rate_per_address=1.0),
        [
            *([("a", 0.0, "admit", None)] * 5),
            ("a", 0.0, "admit", "tls_address_rate"),
            ("a", 0.5, "admit", "tls_address_rate"),
            ("a", 1.0, "admit", None),
            ("a", 1.0, "admit", "tls_address_rate"),
            ("b", 1.0, "admit", None),
        ],
    ),
    (
        "a refused attempt does not count as in flight",
        GateLimits(rate_per_address=1.0, in_flight_per_address=10, in_flight=6),
        [
            *([("a", 0.0, "admit", None)] * 5),
            ("a", 0.0, "admit", "tls_address_rate"),
            ("b", 0.0, "admit", None),
            ("c", 0.0, "admit", "tls_in_flight"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("limits", "steps"), [t[1:] for t in GATE_TABLE], ids=[t[0] for t in GATE_TABLE]
)
def test_gate_decisions(
    limits: GateLimits, steps: list[tuple[str, float, str, str | None]]
) -> None:
    gate = HandshakeGate(limits)
    for index, (address, now, action, expected) in enumerate(steps):
        if action == "done":
            gate.done(address)
        else:
            assert gate.admit(address, now) == expected, (index, address, now)


def test_the_gate_forgets_idle_addresses() -> None:
    gate = HandshakeGate(GateLimits(rate_per_address=10.0, in_flight_per_address=4))
    for i in range(10_000):
        address = f"10.0.{i // 256}.{i % 256}"
        assert gate.admit(address, i * 0.01) is None
        gate.done(address)
    assert gate.addresses() <= 4096 + 1
    assert gate.in_flight == 0


def test_limits_from_the_security_table() -> None:
    assert GateLimits.of(SecurityConfig()) == GateLimits(20.0, 32, 0)
    assert not GateLimits.of(
        SecurityConfig(
            tls_handshake_rate_per_ip=0,
            tls_handshakes_in_flight_per_ip=0,
            tls_handshakes_in_flight=0,
        )
    )


@pytest.fixture
async def gateway(pki: Pki) -> AsyncIterator[RunningGateway]:
    security = SecurityConfig(
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        message_rate=0,
        tls_handshake_rate_per_ip=5.0,
        tls_handshakes_in_flight_per_ip=4,
        tls_handshakes_in_flight=64,
        handshake_timeout=2.0,
    )
    gw = await start_gateway(GatewayConfig(host="127.0.0.1", port=0, security=security))
    yield gw
    await gw.stop(drain_timeout=0)


def refused(gw: RunningGateway, reason: str) -> float:
    for metric in gw.metrics.registry.collect():
        for sample in metric.samples:
            if (
                sample.name == "ocpp_gateway_handshakes_refused_total"
                and sample.labels.get("reason") == reason
            ):
                return float(sample.value)
    return 0.0


def _flood(port: int, source: str, tls: ssl.SSLContext, attempts: int, out: dict[str, int]) -> None:
    """Open TLS connections one after another as fast as possible from `source`."""
    for _ in range(attempts):
        try:
            with (
                socket.create_connection(("127.0.0.1", port), 5.0, (source, 0)) as raw,
                tls.wrap_socket(raw, server_hostname="localhost"),
            ):
                out["completed"] = out.get("completed", 0) + 1
        except (OSError, ssl.SSLError):
            out["failed"] = out.get("failed", 0) + 1


async def heartbeat(ws: ClientConnection, uid: str) -> None:
    await ws.send(json.dumps([2, uid, "Heartbeat", {}]))
    async with asyncio.timeout(TIMEOUT):
        answer = json.loads(await ws.recv())
    assert answer[:2] == [3, uid]


async def test_a_handshake_flood_and_a_slowloris_are_refused_before_tls_while_chargers_are_answered(
    gateway: RunningGateway, pki: Pki
) -> None:
    site = next(s for s in gateway._runner.sites if isinstance(s, GatedSite))
    tls = client_ssl_context(pki)
    chargers = [
        await connect(
            f"{gateway.url}/ocpp/EST-{i}",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            ssl=tls,
            server_hostname="localhost",
            open_timeout=TIMEOUT,
        )
        for i in range(3)
    ]
    # A slowloris from 127.0.0.3: TCP connections that send a few bytes of a ClientHello and
    # stop. Four are admitted (and held until the 2 s handshake timeout), the rest reset.
    loris: list[socket.socket] = []
    for _ in range(12):
        sock = socket.create_connection(("127.0.0.1", gateway.port), 5.0, ("127.0.0.3", 0))
        sock.sendall(b"\x16\x03\x01\x02\x00\x01")
        loris.append(sock)
    # A flood from 127.0.0.2: handshakes back to back, in two threads.
    outcome: dict[str, int] = {}
    threads = [
        threading.Thread(target=_flood, args=(gateway.port, "127.0.0.2", tls, 60, outcome))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    try:
        answered = 0
        while any(thread.is_alive() for thread in threads):
            for index, ws in enumerate(chargers):
                await heartbeat(ws, f"hb-{answered}-{index}")
                answered += 1
            await asyncio.sleep(0.01)
    finally:
        for thread in threads:
            await asyncio.to_thread(thread.join, 30.0)
    assert answered >= 3
    # The flood's burst (25 at 5/s) got through, then the rate refused most of the rest.
    assert outcome.get("completed", 0) >= 20
    assert outcome.get("failed", 0) > 0
    assert refused(gateway, "tls_address_rate") == outcome["failed"]
    await poll(lambda: refused(gateway, "tls_address_in_flight") >= 8, "slowloris refused")
    assert refused(gateway, "tls_address_in_flight") == 8
    # The admitted slowloris sockets are dropped at the handshake timeout; the gate is empty.
    await poll(lambda: site.gate.in_flight == 0, "the gate empty again")
    for sock in loris:
        sock.close()
    for index, ws in enumerate(chargers):
        await heartbeat(ws, f"after-{index}")
        await ws.close()
    # A new charger from another address is admitted as before.
    late = await connect(
        f"{gateway.url}/ocpp/LATE",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        ssl=tls,
        server_hostname="localhost",
        open_timeout=TIMEOUT,
    )
    await heartbeat(late, "late")
    await late.close()


async def test_without_limits_the_port_is_a_plain_tls_site(pki: Pki) -> None:
    security = SecurityConfig(
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_handshake_rate_per_ip=0,
        tls_handshakes_in_flight_per_ip=0,
        tls_handshakes_in_flight=0,
    )
    gw = await start_gateway(GatewayConfig(host="127.0.0.1", port=0, security=security))
    try:
        assert not any(isinstance(s, GatedSite) for s in gw._runner.sites)
        ws = await connect(
            f"{gw.url}/ocpp/PLAIN",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            ssl=client_ssl_context(pki),
            server_hostname="localhost",
            open_timeout=TIMEOUT,
        )
        await heartbeat(ws, "x")
        await ws.close()
    finally:
        await gw.stop(drain_timeout=0)
