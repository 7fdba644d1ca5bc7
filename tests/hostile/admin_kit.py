"""Tools of the hostile-client tests against both listeners: raw HTTP over loopback, a gateway
with an admin listener and credentials, the log as an operator would read it."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest

from kit import WAIT
from ocpp_gateway.config import load_config
from ocpp_gateway.logs import JsonFormatter, TextFormatter
from ocpp_gateway.security.passwords import hash_password
from ocpp_gateway.server import RunningGateway, start_gateway

TOKEN = "s3cr3t-Token-0123456789abcdef"
CP_PASSWORD = "the-password-of-CP-1!"
#: The Basic credentials of CP-1, base64 ("CP-1:the-password-of-CP-1!").
CP_BASIC = "Q1AtMTp0aGUtcGFzc3dvcmQtb2YtQ1AtMSE="
SECRETS = (TOKEN, CP_PASSWORD, CP_BASIC)
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


async def start_admin_gateway(
    tmp_path: Any, credentials: bool = False, **overrides: Any
) -> RunningGateway:
    """A loopback gateway (local responder) with an admin listener and the token; with
    `credentials`, charge points must authenticate (CP-1 has `CP_PASSWORD`)."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "drain_timeout": 0.0,
        "admin.port": 0,
        "admin.token": TOKEN,
        "security.message_rate": 0.0,
    }
    if credentials:
        path = tmp_path / "credentials.toml"
        path.write_text(f'"CP-1" = "{hash_password(CP_PASSWORD)}"\n')
        values["security.credentials_file"] = str(path)
    values.update({key.replace("__", "."): value for key, value in overrides.items()})
    return await start_gateway(load_config(None, env={}, overrides=values))


def http_port(gateway: RunningGateway) -> int:
    """The charge point port."""
    return gateway.port


def admin_port(gateway: RunningGateway) -> int:
    """The admin port."""
    assert gateway.admin_port is not None
    return gateway.admin_port


async def exchange(port: int, data: bytes, within: float = WAIT) -> bytes:
    """Send raw bytes to a loopback port and read until the server closes (bounded).

    Returns:
        Everything the server sent.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(within):
            return await reader.read(-1)
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)


async def first_status(port: int, data: bytes, within: float = WAIT) -> int:
    """Send raw bytes and read the status line of the first answer only (for a request that
    keeps the connection open, such as a refused upgrade)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(within):
            line = await reader.readuntil(b"\r\n")
        [status] = statuses(line)
        return status
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)


def request(path: bytes, *headers: bytes, method: bytes = b"GET", body: bytes = b"") -> bytes:
    """A raw HTTP/1.1 request that asks the server to close after answering."""
    lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines.extend(headers)
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def statuses(answer: bytes) -> list[int]:
    """The status of every response in what a server sent."""
    return [int(found) for found in _STATUS.findall(answer)]


@dataclass
class LogView:
    """The records captured so far, formatted as the operator sees them in both formats."""

    caplog: pytest.LogCaptureFixture

    def lines(self, records: Iterable[logging.LogRecord] | None = None) -> list[str]:
        """Every record as JSON and as text (both formats)."""
        chosen = list(self.caplog.records if records is None else records)
        json_lines = [JsonFormatter().format(record) for record in chosen]
        text_lines = [TextFormatter().format(record) for record in chosen]
        return json_lines + text_lines

    def text(self) -> str:
        """Everything, one string."""
        return "\n".join(self.lines())

    def count(self, message: str) -> int:
        """Records with this message."""
        return sum(1 for record in self.caplog.records if record.getMessage() == message)


def assert_no_secret(*outputs: bytes | str) -> None:
    """None of the secrets (token, password, its Basic encoding) appears in any output."""
    for output in outputs:
        text = output.decode("latin-1") if isinstance(output, bytes) else output
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked"
