"""TLS session resumption across processes (shared ticket keys) and the OpenSSL controls behind
it, against real gateways on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import ocpp_gateway
from ocpp_gateway.bench.tls import handshakes
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.security import SecurityConfig
from ocpp_gateway.security.tls import (
    TICKET_KEY_BYTES,
    OpenSslContext,
    build_server_context,
    new_ticket_keys,
    read_ticket_keys,
)
from ocpp_gateway.server import RunningGateway, start_gateway

from .conftest import Pki, client_ssl_context

Start = Callable[..., Awaitable[RunningGateway]]
# The subprocess imports the same ocpp_gateway as this test (installed or editable).
PYTHON_DIR = str(Path(ocpp_gateway.__file__).resolve().parents[1])
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


@pytest.fixture
async def start(pki: Pki) -> AsyncIterator[Start]:
    started: list[RunningGateway] = []

    async def _start(**security: Any) -> RunningGateway:
        security.setdefault("tls_cert", str(pki.server_cert))
        security.setdefault("tls_key", str(pki.server_key))
        cfg = GatewayConfig(host="127.0.0.1", port=0, security=SecurityConfig(**security))
        gw = await start_gateway(cfg)
        started.append(gw)
        return gw

    yield _start
    for gw in started:
        await gw.stop(drain_timeout=0)


def _visit(port: int, tls: ssl.SSLContext, session: ssl.SSLSession | None) -> tuple[bool, Any]:
    """One TLS connection asking /healthz; (was the session resumed, the session to offer next)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10.0) as raw,
        tls.wrap_socket(raw, server_hostname="localhost", session=session) as sock,
    ):
        sock.sendall(REQUEST)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        return bool(sock.session_reused), sock.session


async def _resumed_on_second(first: RunningGateway, second: RunningGateway, pki: Pki) -> bool:
    tls = client_ssl_context(pki)
    reused, session = await asyncio.to_thread(_visit, first.port, tls, None)
    assert not reused
    reused, _ = await asyncio.to_thread(_visit, second.port, tls, session)
    return reused


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_a_session_resumes_on_another_gateway_holding_the_same_ticket_keys(
    start: Start, pki: Pki, tmp_path: Path, version: ssl.TLSVersion
) -> None:
    key_file = tmp_path / "ticket.key"
    key_file.write_text(new_ticket_keys().hex())
    first = await start(tls_ticket_key_file=str(key_file))
    second = await start(tls_ticket_key_file=str(key_file))
    tls = client_ssl_context(pki, version=version)
    reused, session = await asyncio.to_thread(_visit, first.port, tls, None)
    assert not reused
    reused, session = await asyncio.to_thread(_visit, second.port, tls, session)
    assert reused  # the other process decrypted the first one's ticket
    reused, _ = await asyncio.to_thread(_visit, first.port, tls, session)
    assert reused


async def test_without_shared_keys_another_gateway_makes_a_full_handshake(
    start: Start, pki: Pki
) -> None:
    first, second = await start(), await start()
    assert not await _resumed_on_second(first, second, pki)
    # ... while the same process resumes its own sessions.
    assert await _resumed_on_second(first, first, pki)


def test_one_tls13_ticket_per_connection(pki: Pki) -> None:
    context = build_server_context(str(pki.server_cert), str(pki.server_key))
    assert context.num_tickets == 1


def test_the_ticket_keys_are_those_of_the_file(pki: Pki, tmp_path: Path) -> None:
    keys = new_ticket_keys()
    context = build_server_context(str(pki.server_cert), str(pki.server_key), ticket_keys=keys)
    controls = OpenSslContext(context)
    controls.set_ticket_keys(keys)  # reads them back and compares
    with pytest.raises(ValueError, match="80 bytes"):
        controls.set_ticket_keys(keys[:-1])


@pytest.mark.parametrize(
    ("content", "ok"),
    [
        (b"\x01" * TICKET_KEY_BYTES, True),
        (("ab" * TICKET_KEY_BYTES + "\n").encode(), True),
        (b"\x01" * (TICKET_KEY_BYTES - 1), False),
        (("zz" * TICKET_KEY_BYTES).encode(), False),
        (b"", False),
    ],
)
def test_ticket_key_file_forms(tmp_path: Path, content: bytes, ok: bool) -> None:
    path = tmp_path / "ticket.key"
    path.write_bytes(content)
    if ok:
        assert len(read_ticket_keys(str(path))) == TICKET_KEY_BYTES
    else:
        with pytest.raises(ValueError, match="session ticket key file"):
            read_ticket_keys(str(path))


def test_a_ticket_key_file_without_tls_is_refused() -> None:
    from ocpp_gateway.security.config import check_security_config

    errors = check_security_config(SecurityConfig(tls_ticket_key_file="/tmp/x"))
    assert any(e.startswith("security.tls_ticket_key_file") for e in errors)


async def test_workers_resume_each_others_sessions(pki: Pki) -> None:
    """`serve --workers 2` over TLS: the supervisor hands both workers one set of ticket keys,
    so every reconnect resumes, whichever worker the kernel picks."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PYTHON_DIR, env.get("PYTHONPATH")) if p)
    env.pop("OCPP_GATEWAY_SECURITY__TLS_TICKET_KEY_FILE", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ocpp_gateway.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        "2",
        "--tls-cert",
        str(pki.server_cert),
        "--tls-key",
        str(pki.server_key),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        port = None
        async with asyncio.timeout(30.0):
            while sum("listening on wss://" in line for line in lines) < 2:
                line = (await proc.stderr.readline()).decode()
                assert line, f"gateway exited: {lines}"
                lines.append(line)
                if "supervising 2 workers on port" in line:
                    port = int(line.rsplit(" ", 1)[1])
        assert port is not None
        # Each new TCP connection has a new source port: the kernel spreads them over both
        # workers. Every one after the first resumes the session of the one before.
        result = await asyncio.to_thread(
            handshakes, port, 16, tls=client_ssl_context(pki), resume=True
        )
        assert result["ok"] == 16
        assert result["resumed"] == 15
    finally:
        if proc.returncode is None:
            proc.terminate()
        async with asyncio.timeout(20.0):
            await proc.wait()
