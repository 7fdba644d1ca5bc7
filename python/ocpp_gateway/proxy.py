"""Client addresses behind load balancers: PROXY protocol v1/v2 and X-Forwarded-For, if trusted.

PROXY protocol (HAProxy's specification, versions 1 and 2) is read at the TCP level, before
aiohttp's HTTP parser and before TLS: `ProxySite` listens like aiohttp's `TCPSite`, but a
connection from a `trusted_proxies` address is first paused while the header is read off the
socket itself (peeking, so that not one byte after the header is consumed); then aiohttp's
request handler takes the connection (with TLS started on it when the port serves wss) and
sees the address of the header as its peer. A header that is malformed, incomplete within
the handshake timeout or missing closes the connection. Connections from other addresses are
handed to aiohttp at once, untouched: their PROXY header is never believed.

`X-Forwarded-For` is believed only when the peer (after PROXY protocol) is trusted: the client
is the right-most address of the header that is not itself a trusted proxy.

The header parsers (`header_length`, `parse_header`) are pure functions of bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import socket
import ssl
from asyncio import sslproto
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from aiohttp import hdrs, web

__all__ = [
    "ProxyHeaderError",
    "ProxySite",
    "TrustedProxies",
    "forwarded_client",
    "header_length",
    "parse_header",
    "resolve_forwarded",
]

log = logging.getLogger("ocpp_gateway.proxy")

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107  # the whole v1 line, CRLF included (specification §2.1)
V2_MAX = 16 + 4096  # the fixed part and the longest address block + TLVs accepted
_PEEK = 4096

Address = tuple[str, int]


class ProxyHeaderError(ValueError):
    """A PROXY protocol header that does not follow the specification."""


def header_length(data: bytes) -> int | None:
    """The length of the PROXY header at the start of `data`.

    Args:
        data: the first bytes received on a connection.

    Returns:
        The header's length in bytes, or None when more bytes are needed to tell.

    Raises:
        ProxyHeaderError: `data` cannot begin a v1 or v2 header, or the header is too long.
    """
    if not data:
        return None
    if data[:1] == b"\r":
        if not V2_SIGNATURE.startswith(data[:12]):
            raise ProxyHeaderError("not a PROXY protocol v2 signature")
        if len(data) < 16:
            return None
        total = 16 + int.from_bytes(data[14:16], "big")
        if total > V2_MAX:
            raise ProxyHeaderError("PROXY protocol v2 header too long")
        return total
    if not V1_PREFIX.startswith(data[:6]):
        raise ProxyHeaderError("no PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end >= 0:
        return end + 2
    if len(data) >= V1_MAX:
        raise ProxyHeaderError("PROXY protocol v1 line too long")
    return None


def _port(text: bytes) -> int:
    if not text.isdigit() or (len(text) > 1 and text[:1] == b"0"):
        raise ProxyHeaderError("invalid port")
    port = int(text)
    if port > 65535:
        raise ProxyHeaderError("invalid port")
    return port


def _parse_v1(line: bytes) -> Address | None:
    parts = line[:-2].split(b" ")
    if len(parts) >= 2 and parts[1] == b"UNKNOWN":
        return None
    if len(parts) != 6 or parts[1] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError("malformed PROXY protocol v1 line")
    try:
        source = ipaddress.ip_address(parts[2].decode("ascii"))
        destination = ipaddress.ip_address(parts[3].decode("ascii"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProxyHeaderError("invalid address in PROXY protocol v1 line") from exc
    version = 4 if parts[1] == b"TCP4" else 6
    if source.version != version or destination.version != version:
        raise ProxyHeaderError("address family mismatch in PROXY protocol v1 line")
    _port(parts[5])
    return str(source), _port(parts[4])


def _parse_v2(header: bytes) -> Address | None:
    version, command = header[12] >> 4, header[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError("unsupported PROXY protocol version")
    if command == 0x0:  # LOCAL: the balancer's own connection (a health check)
        return None
    if command != 0x1:
        raise ProxyHeaderError("unknown PROXY protocol v2 command")
    family, transport = header[13] >> 4, header[13] & 0x0F
    body = header[16:]
    if transport not in (0x0, 0x1, 0x2):
        raise ProxyHeaderError("unknown PROXY protocol v2 transport")
    if family == 0x1:  # AF_INET
        if len(body) < 12:
            raise ProxyHeaderError("short IPv4 address block")
        return str(ipaddress.IPv4Address(body[0:4])), int.from_bytes(body[8:10], "big")
    if family == 0x2:  # AF_INET6
        if len(body) < 36:
            raise ProxyHeaderError("short IPv6 address block")
        return str(ipaddress.IPv6Address(body[0:16])), int.from_bytes(body[32:34], "big")
    if family in (0x0, 0x3):  # UNSPEC, AF_UNIX: no client address to believe
        return None
    raise ProxyHeaderError("unknown PROXY protocol v2 address family")


def parse_header(header: bytes) -> Address | None:
    """Parse one complete PROXY protocol header (as measured by `header_length`).

    Args:
        header: the header's bytes, nothing more.

    Returns:
        The client's (address, port), or None when the header names no client (v1 UNKNOWN,
        v2 LOCAL, UNSPEC or AF_UNIX): the connection's own peer then stands.

    Raises:
        ProxyHeaderError: the header is malformed.
    """
    if header.startswith(V2_SIGNATURE):
        return _parse_v2(header)
    if header.startswith(V1_PREFIX) and header.endswith(b"\r\n"):
        return _parse_v1(header)
    raise ProxyHeaderError("malformed PROXY protocol header")


class TrustedProxies:
    """The `trusted_proxies` CIDR blocks.

    Args:
        blocks: addresses or CIDR blocks ("10.0.0.0/8", "::1").

    Raises:
        ValueError: a block is not an address or CIDR block.
    """

    def __init__(self, blocks: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(block, strict=False) for block in blocks]

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._networks)


def forwarded_client(
    headers: Sequence[str], peer: str | None, trusted: TrustedProxies
) -> str | None:
    """The client address an `X-Forwarded-For` chain gives, believed only from trusted peers.

    Args:
        headers: every X-Forwarded-For value of the request, in order.
        peer: the address of the connection's peer.
        trusted: the trusted proxies.

    Returns:
        The right-most address that is not a trusted proxy (walking left from `peer` while
        each hop is trusted); `peer` itself when it is not trusted or there is no header; an
        entry that is not an IP address ends the walk at the hop to its right.
    """
    if peer is None or peer not in trusted or not headers:
        return peer
    hops = [item.strip() for value in headers for item in value.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client
        client = hop
        if hop not in trusted:
            return hop
    return client


def resolve_forwarded(request: web.Request, trusted: TrustedProxies) -> web.Request:
    """The request with `remote` set from X-Forwarded-For when its peer is trusted.

    Args:
        request: the request.
        trusted: the trusted proxies.

    Returns:
        `request` itself, or a clone whose `remote` is the forwarded client.
    """
    values = request.headers.getall(hdrs.X_FORWARDED_FOR, ())
    if not values:
        return request
    client = forwarded_client(values, request.remote, trusted)
    if client is None or client == request.remote:
        return request
    return request.clone(remote=client)


class _HeaderReader(asyncio.Protocol):
    """The first protocol of a connection on a `ProxySite`: reads the PROXY header of a
    trusted peer off the socket, then hands the connection to aiohttp's request handler."""

    def __init__(self, site: ProxySite) -> None:
        self._site = site
        self._transport: asyncio.Transport | None = None
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if not (isinstance(peer, tuple) and peer[0] in self._site.trusted):
            self._site.hand_over(transport, None)
            return
        # Nothing is read by the transport while paused: the header is read from a duplicate
        # of its socket, exactly, and whatever follows (HTTP or a TLS ClientHello) is left.
        transport.pause_reading()
        raw = transport.get_extra_info("socket")
        try:
            self._sock = socket.socket(fileno=os.dup(raw.fileno()))
            self._sock.setblocking(False)
        except OSError:
            transport.abort()
            return
        self._loop.add_reader(self._sock.fileno(), self._readable)
        self._timer = self._loop.call_later(self._site.header_timeout, self._fail, "timeout")

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            peeked = sock.recv(_PEEK, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._fail("socket error")
            return
        if not peeked:
            self._fail("closed before the header")
            return
        data = self._buffer + peeked
        try:
            length = header_length(data)
        except ProxyHeaderError as exc:
            self._fail(str(exc))
            return
        take = len(peeked) if length is None else length - len(self._buffer)
        try:
            self._buffer += sock.recv(take)
        except OSError:
            self._fail("socket error")
            return
        if length is None or len(self._buffer) < length:
            return
        try:
            client = parse_header(self._buffer)
        except ProxyHeaderError as exc:
            self._fail(str(exc))
            return
        self._release()
        assert self._transport is not None
        self._site.hand_over(self._transport, client)

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop_peeking()

    def _stop_peeking(self) -> None:
        if self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _fail(self, reason: str) -> None:
        self._release()
        transport = self._transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        log.info(
            "proxy protocol header refused",
            extra={"remote": peer[0] if isinstance(peer, tuple) else None, "reason": reason},
        )
        if transport is not None:
            transport.abort()

    def data_received(self, data: bytes) -> None:
        # The transport read bytes before its pause took effect (uvloop may, when the header
        # and what follows arrive at once): they continue what was peeked so far, so the
        # header is read from them, and the transport stays the source from here on.
        self._stop_peeking()
        self._buffer += data
        try:
            length = header_length(self._buffer)
        except ProxyHeaderError as exc:
            self._fail(str(exc))
            return
        transport = self._transport
        assert transport is not None
        if length is None:
            transport.resume_reading()  # the rest of the header comes this way too
            return
        header, early = self._buffer[:length], self._buffer[length:]
        try:
            client = parse_header(header)
        except ProxyHeaderError as exc:
            self._fail(str(exc))
            return
        self._release()
        self._site.hand_over(transport, client, early)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()


class ProxySite(web.TCPSite):
    """A TCP site whose trusted peers must open with a PROXY protocol header.

    Args:
        runner: the application runner.
        host, port: where to listen.
        trusted: the trusted proxies.
        header_timeout: seconds a trusted peer has to send the whole header.
        ssl_context: TLS of the port (started after the header), or None.
        reuse_port: bind with SO_REUSEPORT.
        backlog: the listen backlog.
    """

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        trusted: TrustedProxies,
        header_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, host, port, reuse_port=reuse_port, backlog=backlog)
        self.trusted = trusted
        self.header_timeout = header_timeout if header_timeout > 0 else 10.0
        self._tls = ssl_context

    async def start(self) -> None:
        """Listen (the TLS handshake, if any, happens after the PROXY header)."""
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _HeaderReader(self),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )

    def hand_over(
        self, transport: asyncio.Transport, client: Address | None, early: bytes = b""
    ) -> None:
        """Give the connection to aiohttp's request handler, as coming from `client`.

        With TLS, the handshake runs in asyncio's own TLS protocol (`asyncio.sslproto`) put
        between the socket and the handler: `loop.start_tls` under uvloop does not hand a
        usable transport to aiohttp's handler, and this works on every loop.

        Args:
            transport: the connection (paused when a header was read).
            client: the client's address from the PROXY header, or None to keep the peer's.
            early: bytes after the header that the transport already read (given to the
                handler, or to TLS, before anything else).
        """
        server: Callable[[], Any] | None = self._runner.server
        assert server is not None
        handler = server()
        _set_peer(handler, client)
        if self._tls is None:
            transport.set_protocol(handler)
            handler.connection_made(transport)
            if early:
                handler.data_received(early)
        else:
            loop = asyncio.get_running_loop()
            handshake: asyncio.Future[None] = loop.create_future()
            handshake.add_done_callback(_ignore_failure)  # a failed handshake just closes
            tls = sslproto.SSLProtocol(
                loop,
                handler,
                self._tls,
                handshake,
                server_side=True,
                call_connection_made=True,
                ssl_handshake_timeout=max(1, math.ceil(self.header_timeout)),
            )
            transport.set_protocol(tls)
            tls.connection_made(transport)
            while early:
                buffer = tls.get_buffer(len(early))
                taken = min(len(buffer), len(early))
                buffer[:taken] = early[:taken]
                tls.buffer_updated(taken)
                early = early[taken:]
        transport.resume_reading()


def _ignore_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _set_peer(handler: Any, client: Address | None) -> None:
    """Make the request handler (and so `request.remote`) see `client` as its peer."""
    if client is not None:
        # aiohttp's RequestHandler.peername is a cached property (set before connection_made,
        # kept by it); requests copy it.
        with contextlib.suppress(AttributeError, TypeError):
            handler._cache["peername"] = client
