"""WebSocket transport: relays each charge point to `URL/{charge_point_id}` on an upstream CSMS.

Two clients carry the upstream socket. By default it is `picows` (a Cython WebSocket client:
frames are parsed and masked in C, a received frame is handed over in one callback and a send
is one call, without a coroutine per frame), which costs markedly less CPU per frame than
aiohttp's client. aiohttp's client is used where picows cannot serve: permessage-deflate
towards the CSMS (`compress = true`), or when chosen with `client = "aiohttp"`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import aiohttp
import picows
from aiohttp import WSMsgType

from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.logs import redact_url

__all__ = [
    "PLACEHOLDER",
    "PicowsLink",
    "WebSocketLink",
    "WebSocketOptions",
    "WebSocketTransport",
    "upstream_url",
]

log = logging.getLogger("ocpp_gateway.transports.websocket")
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_ENDED = frozenset((WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR))


class WebSocketLink:
    """One upstream WebSocket, carrying text frames as bytes.

    Args:
        ws: the open client WebSocket (created with `decode_text=False`).
        version: the subprotocol the CSMS accepted.
    """

    __slots__ = ("_closed", "_ws", "version")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool], version: str) -> None:
        self._ws = ws
        self._closed = False
        self.version = version

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


@dataclass(frozen=True, slots=True)
class WebSocketOptions:
    """Settings of an upstream CSMS: from `[upstream]`, or a `[transports.<name>]` table of
    type "websocket".

    Attributes:
        url: ws:// or wss:// URL of the CSMS. Where it contains `{charge_point_id}`, the
            (percent-encoded) id replaces that placeholder, anywhere in the path or query
            (`ws://csms/ocpp/{charge_point_id}/`); otherwise it is appended as the last path
            segment (`ws://csms/ocpp` -> `ws://csms/ocpp/CP-1`).
        username, password: HTTP Basic credentials sent to the CSMS (never logged); when the
            password is set and the user name empty, the charge point id is the user name.
        connect_timeout: seconds allowed to open the link during the charge point's handshake.
        compress: offer permessage-deflate to the CSMS (the link then uses aiohttp's client).
        client: the WebSocket client of the links: "picows" (leaner per frame) or "aiohttp".
    """

    url: str
    username: str | None = None
    password: str | None = None
    connect_timeout: float = 10.0
    compress: bool = False
    client: Literal["picows", "aiohttp"] = "picows"

    def check(self, key: str) -> list[str]:
        """Returns: the errors of these settings, each starting with `key`."""
        errors = []
        leftover = self.url.replace(PLACEHOLDER, "")
        if "{" in leftover or "}" in leftover:
            errors.append(f"{key}.url: the only placeholder is {PLACEHOLDER}")
        parts = urlsplit(self.url.replace(PLACEHOLDER, "CP"))
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            errors.append(
                f"{key}.url: expected ws://host[:port]/path or wss://..., got "
                f"{parts.scheme or 'no scheme'}"
            )
        if parts.password is not None:
            errors.append(f"{key}.url: put credentials in {key}.username/password")
        if self.connect_timeout <= 0:
            errors.append(f"{key}.connect_timeout: must be positive")
        return errors


PLACEHOLDER = "{charge_point_id}"


def upstream_url(url: str, charge_point_id: str) -> str:
    """The URL of one charge point's upstream link.

    Args:
        url: the configured URL, with or without the `{charge_point_id}` placeholder.
        charge_point_id: the decoded identity.

    Returns:
        The URL with the percent-encoded id in the placeholder's place, or appended as the last
        path segment when there is no placeholder.
    """
    encoded = quote(charge_point_id, safe="")
    if PLACEHOLDER in url:
        return url.replace(PLACEHOLDER, encoded)
    return f"{url.rstrip('/')}/{encoded}"


_P_TEXT = picows.WSMsgType.TEXT
_P_BINARY = picows.WSMsgType.BINARY
_P_CONTINUATION = picows.WSMsgType.CONTINUATION
_P_CLOSE = picows.WSMsgType.CLOSE


class _Sent:
    """The awaitable `PicowsLink.send` returns: the frame is already handed to the socket."""

    __slots__ = ()

    def __await__(self) -> Any:
        return iter(())


_SENT = _Sent()


class _UpstreamListener(picows.WSListener):
    """Receives the CSMS's frames for one link (picows calls it from its protocol).

    Frames arriving while nobody waits are queued in `frames`, created on first use: a link
    mostly has its pump waiting, and an idle link then holds no queue at all.
    """

    __slots__ = ("_max", "_parts", "close_code", "ended", "frames", "paused", "waiter")

    def __init__(self, max_msg_size: int) -> None:
        super().__init__()
        self.frames: deque[bytes | None] | None = None
        self.waiter: asyncio.Future[bytes | None] | None = None
        self.ended = False
        self.close_code: int | None = None
        self.paused: asyncio.Future[None] | None = None
        self._max = max_msg_size
        self._parts: bytearray | None = None

    def _deliver(self, item: bytes | None) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(item)
                return
        if self.frames is None:
            self.frames = deque()
        self.frames.append(item)

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        kind = frame.msg_type
        if kind is _P_TEXT or kind is _P_BINARY:
            if frame.fin:
                self._deliver(frame.get_payload_as_bytes())
            else:
                self._parts = bytearray(frame.get_payload_as_memoryview())
        elif kind is _P_CONTINUATION:
            parts = self._parts
            if parts is None:
                return
            parts += frame.get_payload_as_memoryview()
            if len(parts) > self._max:
                self._parts = None
                transport.send_close(picows.WSCloseCode.MESSAGE_TOO_BIG)
                transport.disconnect()
            elif frame.fin:
                self._parts = None
                self._deliver(bytes(parts))
        elif kind is _P_CLOSE:
            self.close_code = frame.get_close_code().value
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()
            self._end()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self._end()
        paused = self.paused
        if paused is not None and not paused.done():
            paused.set_result(None)

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self._deliver(None)

    def pause_writing(self) -> None:
        if self.paused is None:
            self.paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        paused, self.paused = self.paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)


class PicowsLink:
    """One upstream WebSocket on picows, carrying text frames as bytes.

    Args:
        transport: the connected picows transport.
        listener: its listener.
        version: the subprotocol the CSMS accepted.
    """

    __slots__ = ("_closed", "_listener", "_loop", "_send", "_transport", "version")

    def __init__(
        self, transport: picows.WSTransport, listener: _UpstreamListener, version: str
    ) -> None:
        self.version = version
        self._transport = transport
        self._listener = listener
        self._send = transport.send
        self._loop = asyncio.get_running_loop()
        self._closed = False

    @property
    def close_code(self) -> int | None:
        """The close code the CSMS sent, once closed."""
        return self._listener.close_code

    def send(self, frame: bytes) -> Awaitable[None]:
        """Send one text frame; the returned awaitable waits only while the socket's write
        buffer is over its high-water mark (a slow CSMS slows the charge point's pump down).

        Raises:
            TransportUnavailable: the socket is closed.
        """
        listener = self._listener
        if listener.ended or self._closed:
            raise TransportUnavailable("upstream closed")
        self._send(_P_TEXT, frame)
        paused = listener.paused
        return _SENT if paused is None else asyncio.shield(paused)

    def recv(self) -> Awaitable[bytes | None]:
        """Returns: an awaitable of the next frame's bytes, or of None once the socket closed."""
        listener = self._listener
        future: asyncio.Future[bytes | None] = self._loop.create_future()
        frames = listener.frames
        if frames:
            future.set_result(frames.popleft())
        elif listener.ended:
            future.set_result(None)
        else:
            listener.waiter = future
        return future

    async def close(self) -> None:
        """Close the upstream socket (1000); idempotent."""
        if not self._closed:
            self._closed = True
            transport = self._transport
            if not transport.is_close_frame_sent:
                transport.send_close(picows.WSCloseCode.OK)
            transport.disconnect()


class WebSocketTransport:
    """Opens one upstream WebSocket per charge point through one shared ClientSession.

    Args:
        name: the transport's configured name.
        url: base URL; the charge point id (percent-encoded) is appended as a path segment.
        username, password: Basic credentials; when `password` is set and `username` is empty,
            the charge point id is the user name (OCPP security profile 1 style).
        connect_timeout: seconds allowed for the upstream handshake.
        compress: offer permessage-deflate upstream (then aiohttp's client carries the link).
        max_msg_size: largest frame accepted from the CSMS.
        client: "picows" (the default, leaner per frame) or "aiohttp".
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
        client: Literal["picows", "aiohttp"] = "picows",
    ) -> None:
        self.name = name
        self.url = url if PLACEHOLDER in url else url.rstrip("/")
        self._username = username
        self._password = password
        self._timeout = connect_timeout
        self._compress = 15 if compress else 0
        self._max_msg_size = max_msg_size
        self._session: aiohttp.ClientSession | None = None
        self._picows = client == "picows" and not compress
        # A second backend's links log their failures themselves, rate-bounded (fanout).
        self.log_failures = True

    @classmethod
    def from_options(
        cls, name: str, options: WebSocketOptions, max_msg_size: int
    ) -> WebSocketTransport:
        """Build the transport from its typed settings."""
        return cls(
            name,
            options.url,
            username=options.username,
            password=options.password,
            connect_timeout=options.connect_timeout,
            compress=options.compress,
            max_msg_size=max_msg_size,
            client=options.client,
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, force_close=True)
            # No total timeout: the handshake has its own deadline in open(), and aiohttp's
            # default (300 s) would keep a timer alive per upstream socket (~1.2 KB each).
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None)
            )
        return self._session

    async def open(
        self, charge_point_id: str, versions: tuple[str, ...]
    ) -> WebSocketLink | PicowsLink:
        """Open the charge point's URL on the CSMS, offering the charge point's versions in its
        order; the CSMS picks one (OCPP 2.x Part 4: a CSMS that speaks only 2.0.1 still takes
        a station that prefers 2.1).

        Args:
            charge_point_id: the decoded identity.
            versions: the versions the charge point offered, preferred first.

        Returns:
            The open link; its `version` is the one the CSMS chose.

        Raises:
            TransportUnavailable: refused, unreachable, timed out, or the CSMS chose none of
                the versions.
        """
        url = upstream_url(self.url, charge_point_id)
        headers = {}
        if self._password is not None:
            user = self._username or charge_point_id
            token = base64.b64encode(f"{user}:{self._password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        if self._picows:
            return await self._open_picows(url, versions, headers, charge_point_id)
        try:
            async with asyncio.timeout(self._timeout):
                ws = await self._client().ws_connect(
                    url,
                    protocols=versions,
                    headers=headers,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                    autoping=True,
                    compress=self._compress,
                    max_msg_size=self._max_msg_size,
                    decode_text=False,
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._failed(exc, charge_point_id, versions) from exc
        chosen = ws.protocol
        if chosen not in versions:
            await ws.close()
            raise self._refused_versions(charge_point_id, versions, chosen)
        return WebSocketLink(ws, chosen)

    async def _open_picows(
        self, url: str, versions: tuple[str, ...], headers: dict[str, str], charge_point_id: str
    ) -> PicowsLink:
        headers["Sec-WebSocket-Protocol"] = ", ".join(versions)
        max_msg_size = self._max_msg_size
        try:
            async with asyncio.timeout(self._timeout):
                transport, listener = await picows.ws_connect(
                    lambda: _UpstreamListener(max_msg_size),
                    url,
                    websocket_handshake_timeout=self._timeout,
                    enable_auto_pong=True,
                    max_frame_size=max_msg_size,
                    extra_headers=headers,
                    max_redirects=0,
                    # The buffer grows for large frames; OCPP frames are mostly small.
                    read_buffer_init_size=2048,
                    # uvloop's own transport: aiofastnet's costs ~6 KB more per socket.
                    use_aiofastnet=False,
                )
        except (TimeoutError, picows.WSError, OSError) as exc:
            raise self._failed(exc, charge_point_id, versions) from exc
        response = transport.response
        answer = response.headers.get("Sec-WebSocket-Protocol") if response else None
        chosen = answer.strip() if answer else None
        if chosen is None or chosen not in versions:
            transport.send_close(picows.WSCloseCode.PROTOCOL_ERROR)
            transport.disconnect()
            raise self._refused_versions(charge_point_id, versions, chosen)
        assert isinstance(listener, _UpstreamListener)
        return PicowsLink(transport, listener, chosen)

    def _refused_versions(
        self, charge_point_id: str, versions: tuple[str, ...], chosen: str | None
    ) -> TransportUnavailable:
        log.warning(
            "upstream chose no offered subprotocol",
            extra={
                "transport": self.name,
                "url": redact_url(self.url),
                "charge_point_id": charge_point_id,
                "offered": list(versions),
                "chosen": chosen,
            },
        )
        return TransportUnavailable("upstream did not accept the subprotocol")

    def _failed(
        self, exc: BaseException, charge_point_id: str, versions: tuple[str, ...]
    ) -> TransportUnavailable:
        """Log a failed upstream handshake with what an operator needs to diagnose it: the HTTP
        status the CSMS answered or the errno of the socket, and the subprotocol offered."""
        if not self.log_failures:
            return TransportUnavailable(f"cannot open upstream: {type(exc).__name__}")
        status = getattr(exc, "status", None)
        if status is None:
            status = getattr(getattr(exc, "response", None), "status", None)
        errno = exc.errno if isinstance(exc, OSError) else None
        log.warning(
            "upstream connect failed",
            extra={
                "transport": self.name,
                "url": redact_url(self.url),
                "charge_point_id": charge_point_id,
                "subprotocol": ", ".join(versions),
                "error": type(exc).__name__,
                "status": status if isinstance(status, int) else None,
                "errno": errno,
                "detail": redact_url(str(exc))[:200],
            },
        )
        return TransportUnavailable(f"cannot open upstream: {type(exc).__name__}")

    async def close(self) -> None:
        """Close the shared ClientSession; idempotent."""
        if self._session is not None:
            await self._session.close()
            self._session = None
