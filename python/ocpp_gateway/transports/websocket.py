"""WebSocket transport: relays each charge point to `URL/{charge_point_id}` on an upstream CSMS."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import WSMsgType

from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.logs import redact_url

__all__ = ["WebSocketLink", "WebSocketTransport"]

log = logging.getLogger("ocpp_gateway.transports.websocket")
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_ENDED = frozenset((WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR))


class WebSocketLink:
    """One upstream WebSocket, carrying text frames as bytes.

    Args:
        ws: the open client WebSocket (created with `decode_text=False`).
    """

    __slots__ = ("_closed", "_ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        self._ws = ws
        self._closed = False

    @property
    def close_code(self) -> int | None:
        """The close code the CSMS sent, once closed."""
        return self._ws.close_code

    def send(self, frame: bytes) -> Coroutine[Any, Any, None]:
        """Send one text frame (hot path: returns aiohttp's own coroutine, no extra layer).

        Args:
            frame: UTF-8 JSON bytes.

        Returns:
            The coroutine to await.

        Raises:
            TransportUnavailable: the socket is closed.
            ConnectionError: the socket broke while sending (aiohttp's ClientConnectionResetError).
        """
        ws = self._ws
        if ws.closed:
            raise TransportUnavailable("upstream closed")
        return ws.send_frame(frame, _TEXT)

    async def recv(self) -> bytes | None:
        """Returns: the next text (or binary) frame's bytes, or None once the socket closes."""
        receive = self._ws.receive
        while True:
            msg = await receive()
            kind = msg.type
            if kind is _TEXT:
                data: bytes = msg.data  # decode_text=False: text frames arrive as bytes
                return data
            if kind is _BINARY:
                return bytes(msg.data)
            if kind in _ENDED:
                return None

    async def close(self) -> None:
        """Close the upstream socket (1000); idempotent."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(TimeoutError, ConnectionError, aiohttp.ClientError):
                await self._ws.close()


class WebSocketTransport:
    """Opens one upstream WebSocket per charge point through one shared ClientSession.

    Args:
        name: the transport's configured name.
        url: base URL; the charge point id (percent-encoded) is appended as a path segment.
        username, password: Basic credentials; when `password` is set and `username` is empty,
            the charge point id is the user name (OCPP security profile 1 style).
        connect_timeout: seconds allowed for the upstream handshake.
        compress: offer permessage-deflate upstream.
        max_msg_size: largest frame accepted from the CSMS.
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float = 10.0,
        compress: bool = False,
        max_msg_size: int = 4 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self._username = username
        self._password = password
        self._timeout = connect_timeout
        self._compress = 15 if compress else 0
        self._max_msg_size = max_msg_size
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, force_close=True)
            # No total timeout: the handshake has its own deadline in open(), and aiohttp's
            # default (300 s) would keep a timer alive per upstream socket (~1.2 KB each).
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None)
            )
        return self._session

    async def open(self, charge_point_id: str, subprotocol: str) -> WebSocketLink:
        """Open `URL/{charge_point_id}` offering only `subprotocol`.

        Args:
            charge_point_id: the decoded identity.
            subprotocol: the version the charge point negotiated.

        Returns:
            The open link.

        Raises:
            TransportUnavailable: refused, unreachable, timed out, or the CSMS did not accept
                the subprotocol.
        """
        url = f"{self.url}/{quote(charge_point_id, safe='')}"
        headers = {}
        if self._password is not None:
            user = self._username or charge_point_id
            token = base64.b64encode(f"{user}:{self._password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        try:
            async with asyncio.timeout(self._timeout):
                ws = await self._client().ws_connect(
                    url,
                    protocols=(subprotocol,),
                    headers=headers,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                    autoping=True,
                    compress=self._compress,
                    max_msg_size=self._max_msg_size,
                    decode_text=False,
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning(
                "upstream connect failed",
                extra={
                    "transport": self.name,
                    "url": redact_url(self.url),
                    "error": type(exc).__name__,
                },
            )
            raise TransportUnavailable(f"cannot open upstream: {type(exc).__name__}") from exc
        if ws.protocol != subprotocol:
            await ws.close()
            raise TransportUnavailable("upstream did not accept the subprotocol")
        return WebSocketLink(ws)

    async def close(self) -> None:
        """Close the shared ClientSession; idempotent."""
        if self._session is not None:
            await self._session.close()
            self._session = None
