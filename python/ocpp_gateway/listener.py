"""The HTTP layer both listeners share: parser errors answered without echo, a cap, no banner.

aiohttp answers a request it cannot parse (a header holding a control character, a line too
long, a bad method) itself: it logs the parser's message, which quotes the whole offending
header line, with a traceback at ERROR, and echoes that message in the 400 body, so an
`Authorization` header with a stray CR (a token file with CRLF line endings) put the token in
both. `GuardedRunner` serves an application through `GuardedHandler`, whose `handle_error`
answers with a fixed body and logs one bounded line (the error's class and the parser's first
words, never a header), at a bounded rate, counting each refusal by reason.

The guard also caps the TCP connections a listener holds at once (over the cap a connection
gets a 503 and is closed before anything is read from it; unix sockets are not counted), and
takes aiohttp's version banner (`Server: Python/3.11 aiohttp/...`) off every response.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ocpp_gateway.logs import Throttle

__all__ = ["SERVER_NAME", "GuardedHandler", "GuardedRunner", "ListenerGuard", "parser_reason"]

log = logging.getLogger("ocpp_gateway.listener")

#: The `Server` header of the answers aiohttp writes itself (no version).
SERVER_NAME = "ocpp-gateway"
# The leading words of a parser message ("Invalid header value char", "Bad status line"):
# what follows them quotes the request.
_LEADING_WORDS = re.compile(r"[A-Za-z][A-Za-z ]{0,59}")
_REFUSED = "\x00refused"  # not an address
_OVER_CAP = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n"
)


class ListenerGuard:
    """What one listener counts and caps.

    Args:
        name: the listener's name in log lines ("admin", "charge_point").
        refused: called with a reason ("bad_request", "connection_limit", "internal_error",
            "timeout") for each request or connection refused here (a counter's `inc`).
        max_connections: TCP connections held at once; 0 means no cap.
        max_per_address: TCP connections held at once from one client address (so that one
            client cannot hold every place, the probes' included); 0 means no such cap.
    """

    def __init__(
        self,
        name: str,
        refused: Callable[[str], None],
        max_connections: int = 0,
        max_per_address: int = 0,
    ) -> None:
        self.name = name
        self.refused = refused
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.open = 0
        self._per_address: dict[str, int] = {}
        self._lines = Throttle(10.0, 10)

    @property
    def capped(self) -> bool:
        """Whether connections are counted at all."""
        return bool(self.max_connections or self.max_per_address)

    def admit(self, address: str) -> str | None:
        """Count a new connection, or refuse it.

        Args:
            address: the client's address ("" when unknown).

        Returns:
            None when it is taken (and counted until `release`), else the refusal reason:
            "connection_limit" or "address_limit".
        """
        if self.max_connections and self.open >= self.max_connections:
            return "connection_limit"
        held = self._per_address.get(address, 0)
        if self.max_per_address and held >= self.max_per_address:
            return "address_limit"
        self.open += 1
        self._per_address[address] = held + 1
        return None

    def release(self, address: str) -> None:
        """A counted connection ended.

        Args:
            address: as given to `admit`.
        """
        self.open -= 1
        held = self._per_address.get(address, 0) - 1
        if held > 0:
            self._per_address[address] = held
        else:
            self._per_address.pop(address, None)

    def log(self, level: int, message: str, exc: BaseException | None = None, **extra: Any) -> None:
        """Log a line at a bounded rate (10 per 10 s), with how many were left out before it.

        Args:
            level: the logging level.
            message: the message.
            exc: an exception whose traceback goes with the line.
            extra: the line's fields.
        """
        suppressed = self._lines.allow(time.monotonic())
        if suppressed is None:
            return
        fields = {"listener": self.name, **extra}
        if suppressed:
            fields["suppressed"] = suppressed
        log.log(level, message, extra=fields, exc_info=exc)


def parser_reason(exc: BaseException | None) -> str:
    """The loggable part of an HTTP parser error.

    Args:
        exc: the error aiohttp raised.

    Returns:
        The leading words of its message (letters and spaces, at most 60 characters): what
        follows them may quote the request, a credential included.
    """
    message = getattr(exc, "message", None)
    found = _LEADING_WORDS.match(message) if isinstance(message, str) else None
    return found.group().strip() if found else ""


class GuardedHandler(RequestHandler):
    """aiohttp's request handler with the guard's error answers and connection cap.

    Args:
        manager: the server that made it.
        guard: its listener's guard.
        kwargs: aiohttp's handler settings.
    """

    __slots__ = ("_guard", "_place")

    def __init__(self, manager: web.Server, guard: ListenerGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        # None: not counted; the client's address: counted; _REFUSED: refused at once.
        self._place: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the connection, or refuse it with 503 when the listener (or the client's
        address) holds its cap."""
        guard = self._guard
        if not guard.capped:
            super().connection_made(transport)
            return
        sock = transport.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_UNIX:
            address = _peer(transport) or ""
            reason = guard.admit(address)
            if reason is not None:
                guard.refused(reason)
                guard.log(
                    logging.WARNING,
                    "connection refused: too many open",
                    remote=address,
                    reason=reason,
                )
                writable: Any = transport
                writable.write(_OVER_CAP)
                writable.close()
                self._place = _REFUSED
                return
            self._place = address
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Release the connection's place under the caps."""
        place, self._place = self._place, None
        if place == _REFUSED:
            return  # refused in connection_made: aiohttp never took it
        if place is not None:
            self._guard.release(place)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer a request aiohttp could not parse or serve, without echoing anything of it.

        Args:
            request: the request (for a parser error, an empty stand-in).
            status: 400 (parser error), 500 (a handler raised) or 504 (a handler timed out).
            exc: the error.
            message: aiohttp's message (unused: it quotes the request).

        Returns:
            A response with a fixed body that closes the connection.

        Raises:
            ConnectionError: part of a response was already sent.
        """
        guard = self._guard
        remote = request.remote
        if status == HTTPStatus.BAD_REQUEST:
            guard.refused("bad_request")
            guard.log(
                logging.INFO,
                "bad http request",
                remote=remote,
                error=type(exc).__name__,
                detail=parser_reason(exc),
            )
        elif status == HTTPStatus.GATEWAY_TIMEOUT:
            guard.refused("timeout")
            guard.log(logging.WARNING, "request handler timed out", remote=remote)
        else:
            guard.refused("internal_error")
            guard.log(logging.ERROR, "request failed", exc=exc, remote=remote)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already started")
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        response = web.Response(
            status=status,
            text=f"{status} {phrase}\n",
            headers={hdrs.SERVER: SERVER_NAME},
        )
        response.force_close()
        return response


class _GuardedServer(web.Server):
    """aiohttp's low-level server making `GuardedHandler`s."""

    def __init__(self, base: web.Server, guard: ListenerGuard, kwargs: dict[str, Any]) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **kwargs,
        )
        self.guard = guard
        self._handler_kwargs = kwargs

    def __call__(self) -> RequestHandler:
        return GuardedHandler(
            self, self.guard, loop=asyncio.get_running_loop(), **self._handler_kwargs
        )


class GuardedRunner(web.AppRunner):
    """An `AppRunner` whose connections are served by `GuardedHandler`, and whose application
    sends no `Server` banner.

    Args:
        app: the application (not yet frozen).
        guard: the listener's guard.
        kwargs: `AppRunner` and request handler settings (keepalive_timeout, access_log...).
    """

    __slots__ = ("_guard", "_handler_kwargs")

    def __init__(self, app: web.Application, guard: ListenerGuard, **kwargs: Any) -> None:
        app.on_response_prepare.append(_no_banner)
        super().__init__(app, **kwargs)
        self._guard = guard
        self._handler_kwargs = {
            key: value
            for key, value in kwargs.items()
            if key not in ("handle_signals", "shutdown_timeout", "access_log_class")
        }

    @property
    def guard(self) -> ListenerGuard:
        """The listener's guard."""
        return self._guard

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        return _GuardedServer(base, self._guard, self._handler_kwargs)


async def _no_banner(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.popall(hdrs.SERVER, None)


def _peer(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None
