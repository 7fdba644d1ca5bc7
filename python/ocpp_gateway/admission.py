"""Admission: path, subprotocol, authentication, limits, takeover; a connection or a refusal.

Also the plugins' on_connect and the opening of the default backend link.

Order (all before the upgrade, so that a refusal is a plain HTTP status):
1. path rules (identity at most 48 characters, no colon, no control character): 400 / 404;
2. draining: 503;
3. security check (authentication, limits): the status it chooses;
4. plugins' on_connect: 403 on Reject, 500 when a plugin fails;
5. identity takeover policy: 409 when the newcomer may not displace a live connection (the
   live one may be pinged first; nothing is closed yet);
6. the default backend link is opened, offering every OCPP version the charge point offered,
   in its order: 503 when it cannot be (the charger retries later); the version the backend
   chose is the connection's (a station preferring 2.1 reaches a CSMS that speaks 2.0.1);
7. only now is a displaced live connection closed, and the upgrade completed.
When the charge point offers no OCPP subprotocol we know, the handshake completes without a
subprotocol and the socket is closed at once (1002); nothing reaches a backend.

The rules themselves (`check_path`, `negotiate_subprotocol`, `takeover_rule`) are plain
functions of their inputs, testable without sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import hdrs, web
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict

from ocpp_gateway._core import OcppVersionName
from ocpp_gateway.connection import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_PROTOCOL_ERROR, Connection
from ocpp_gateway.errors import TransportUnavailable
from ocpp_gateway.logs import Throttle
from ocpp_gateway.reasons import RefusalReason
from ocpp_gateway.registry import Registry
from ocpp_gateway.routing import ConnectionInfo, Reject
from ocpp_gateway.schemas import VERSIONS
from ocpp_gateway.transports.base import SharedOwnership

if TYPE_CHECKING:
    from ocpp_gateway.runtime import Runtime

__all__ = [
    "MAX_ID_LENGTH",
    "REFUSAL_LINES",
    "Admission",
    "Refusal",
    "TakeoverRule",
    "check_path",
    "negotiate_subprotocol",
    "offered_versions",
    "release_handshake_state",
    "takeover_rule",
]

#: Refusal log lines allowed per 10 s in one process.
REFUSAL_LINES = 50

log = logging.getLogger("ocpp_gateway.admission")

MAX_ID_LENGTH = 48
# Lower-cased offered token -> the version name.
_VERSIONS: dict[str, OcppVersionName] = {version: version for version in VERSIONS}

TakeoverRule = Literal["replace", "ping", "refuse"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A handshake refused before the upgrade.

    Attributes:
        reason: the handshakes_refused_total reason (a closed set).
        status: the HTTP status.
        text: the response body.
        headers: extra response headers.
        detail: why, for the log line only (e.g. what the transport said); never sent.
    """

    reason: RefusalReason
    status: int
    text: str
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    detail: str = ""


def check_path(charge_point_id: str) -> Refusal | None:
    """The path rules of the charge point identity.

    Args:
        charge_point_id: the percent-decoded last path segment.

    Returns:
        None when the identity is acceptable, else the refusal (404 empty, 400 invalid).
    """
    if not charge_point_id:
        return Refusal("bad_path", 404, "missing charge point id")
    if len(charge_point_id) > MAX_ID_LENGTH or ":" in charge_point_id:
        return Refusal("bad_path", 400, "invalid charge point id")
    if any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in charge_point_id):
        # Control characters (CR, LF, NUL...) in an identity only serve to forge log lines.
        return Refusal("bad_path", 400, "invalid charge point id")
    return None


def offered_versions(
    header_values: Iterable[str], supported: Iterable[str] = VERSIONS
) -> dict[OcppVersionName, str]:
    """The OCPP versions a client offers in its Sec-WebSocket-Protocol header values.

    Tolerant of odd clients: several header lines, empty items (leading or doubled commas),
    spaces and letter case.

    Args:
        header_values: every Sec-WebSocket-Protocol header value of the request.
        supported: the versions the gateway serves (lower case).

    Returns:
        Version -> the token exactly as the client spelled it, in the client's order of
        preference (RFC 6455 §4.1), each version once; empty when none is an OCPP version.
    """
    known = frozenset(supported)
    offered: dict[OcppVersionName, str] = {}
    for value in header_values:
        for token in value.split(","):
            name = token.strip()
            version = _VERSIONS.get(name.lower())
            if version is not None and version in known and version not in offered:
                offered[version] = name
    return offered


def negotiate_subprotocol(
    header_values: Iterable[str], supported: Iterable[str] = VERSIONS
) -> str | None:
    """The client's preferred OCPP subprotocol (see `offered_versions`).

    Returns:
        The offered token exactly as the client spelled it, or None when none is an OCPP version.
    """
    return next(iter(offered_versions(header_values, supported).values()), None)


def takeover_rule(
    policy: str, authenticated: bool, authentication_configured: bool
) -> TakeoverRule:
    """What a newcomer may do to the live connection of its identity (DESIGN: a second
    connection never displaces the first unless it has authenticated).

    Args:
        policy: the `security.takeover` setting: "ping", "replace" or "refuse".
        authenticated: the newcomer proved its identity.
        authentication_configured: credentials or client certificates are configured.

    Returns:
        "replace": displace the live one at once; "ping": displace it only if it fails a ping
        (a charger whose old TCP connection is half-open must be able to come back);
        "refuse": never.
    """
    if policy == "refuse":
        return "refuse"
    if policy == "replace" and authenticated:
        return "replace"
    if not authenticated and authentication_configured:
        return "refuse"
    return "ping"


def _log_refusal(
    request: web.Request, reason: str, status: int, detail: str = "", suppressed: int = 0
) -> None:
    """One info line per refusal: reason, id, address, offered subprotocols (client-chosen
    strings cut to 100 characters); never a header that carries a credential."""
    charge_point_id = request.match_info.get("charge_point_id")
    offered = request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL)
    log.info(
        "handshake refused",
        extra={
            "reason": reason,
            "status": status,
            "charge_point_id": charge_point_id[:100] if charge_point_id else charge_point_id,
            "remote": request.remote,
            "offered": offered[:100] if offered else offered,
            **({"detail": detail} if detail else {}),
            **({"suppressed": suppressed} if suppressed else {}),
        },
    )


class _OcppWebSocket(web.WebSocketResponse):
    """A WebSocketResponse that answers with the subprotocol we negotiated ourselves."""

    def __init__(self, chosen: str | None, **kwargs: Any) -> None:
        super().__init__(protocols=(chosen,) if chosen else (), **kwargs)
        self._chosen = chosen

    def choose(self, token: str) -> None:
        """Answer with `token` (the backend's choice among the offered versions)."""
        self._chosen = token
        self._protocols = (token,)

    def _handshake(self, request: BaseRequest) -> tuple[CIMultiDict[str], str | None, int, bool]:
        headers, _, compress, notakeover = super()._handshake(request)
        if self._chosen is not None:
            headers[hdrs.SEC_WEBSOCKET_PROTOCOL] = self._chosen
        else:
            headers.popall(hdrs.SEC_WEBSOCKET_PROTOCOL, None)
        return headers, self._chosen, compress, notakeover


def release_handshake_state(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Free what aiohttp keeps of the handshake that an upgraded socket never uses again
    (about 2.5 KB per charge point with aiohttp 3.14):

    - the response headers, already sent (`ws.headers`, public API);
    - the HTTP request parser (and what it still refers to): once a socket is upgraded,
      aiohttp hands every byte to the WebSocket reader and reads `RequestHandler._parser` only
      behind a None check (None is its own state after `connection_lost`);
    - the WebSocket writer's masking-key source, which only a client uses (`use_mask`).

    The last two are aiohttp private attributes: each is dropped only when it is there and the
    state is as described, so an aiohttp that changes them keeps them (and
    tests/server/test_memory.py, which checks that they still go, fails).

    Args:
        request: the upgrade request.
        ws: its prepared WebSocket.
    """
    ws.headers.clear()
    protocol = request.protocol
    if (
        getattr(protocol, "_upgraded", False) is True
        and getattr(protocol, "_payload_parser", None) is not None
        and getattr(protocol, "_parser", None) is not None
    ):
        protocol._parser = None
    writer = getattr(ws, "_writer", None)
    if getattr(writer, "use_mask", True) is False and hasattr(writer, "get_random_bits"):
        writer.get_random_bits = None  # type: ignore[union-attr]


class _Refused(Exception):
    """The identity-takeover policy refuses a newcomer (409)."""


class Admission:
    """Admits charge points into a runtime's registry.

    Args:
        runtime: the process's built-once products.
        registry: the process's connections, which an admitted one joins.
    """

    def __init__(self, runtime: Runtime, registry: Registry[Connection]) -> None:
        self._runtime = runtime
        self._registry = registry
        # A reconnect storm refused by a busy backend would write a line per attempt: at most
        # REFUSAL_LINES per 10 s pass, the next line says how many were left out (the
        # handshakes_refused_total counter has every one).
        self._log_budget = Throttle(10.0, REFUSAL_LINES)

    def _log(
        self, request: web.Request, reason: RefusalReason, status: int, detail: str = ""
    ) -> None:
        suppressed = self._log_budget.allow(time.monotonic())
        if suppressed is not None:
            _log_refusal(request, reason, status, detail, suppressed)

    def _refuse(self, request: web.Request, refusal: Refusal) -> web.Response:
        """Count, log (reason, id, address; never a credential) and answer a refusal."""
        self._runtime.metrics.handshakes_refused.labels(refusal.reason).inc()
        self._log(request, refusal.reason, refusal.status, refusal.detail)
        return web.Response(status=refusal.status, text=refusal.text, headers=refusal.headers)

    def refuse_unknown_path(self, request: web.Request) -> web.Response:
        """Answer a request for a path that is no endpoint (404), counted and logged as a
        `bad_path` refusal: a charger configured with the wrong URL shows in the metrics and
        the log, not only in its own retries.

        Args:
            request: the request.

        Returns:
            The 404 response.
        """
        detail = f"no endpoint at {request.path[:100]!r}"
        return self._refuse(request, Refusal("bad_path", 404, "not found", detail=detail))

    async def admit(self, request: web.Request) -> Connection | web.StreamResponse:
        """Run the admission steps for one upgrade request.

        Args:
            request: the HTTP request on `/ocpp/{charge_point_id}`.

        Returns:
            The accepted connection (socket prepared, default link open, registered as the
            live one of its identity), or the response that ends the request (a refusal, or a
            socket closed at once).
        """
        runtime = self._runtime
        charge_point_id = request.match_info["charge_point_id"]
        refusal = check_path(charge_point_id)
        if refusal is None and not self._registry.accepting:
            refusal = Refusal("draining", 503, "gateway is shutting down")
        if refusal is not None:
            return self._refuse(request, refusal)
        offered = offered_versions(
            request.headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, ()), runtime.versions
        )
        chosen = next(iter(offered.values()), None)
        sec = runtime.config.security
        ws = _OcppWebSocket(
            chosen,
            autoping=False,
            # Keep-alive pings come from the process timer (Connection.tick), and idle sockets
            # are closed there too: no per-socket heartbeat or receive timeout.
            heartbeat=None,
            receive_timeout=None,
            max_msg_size=sec.max_message_bytes,
            compress=True,
            decode_text=False,
        )
        if not ws.can_prepare(request).ok:
            return self._refuse(
                request, Refusal("not_websocket", 400, "expected a WebSocket upgrade")
            )
        if chosen is None:
            # RFC 6455 / OCPP-J §3.1: finish the handshake without a subprotocol, then close.
            runtime.metrics.handshakes_refused.labels("subprotocol").inc()
            self._log(request, "subprotocol", 101)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.prepare(request)
                await ws.close(code=CLOSE_PROTOCOL_ERROR, message=b"no supported OCPP subprotocol")
            return ws
        version = next(iter(offered))
        try:
            async with asyncio.timeout(
                sec.handshake_timeout if sec.handshake_timeout > 0 else None
            ):
                decision = await runtime.security.check_handshake(request, charge_point_id)
        except TimeoutError:
            return self._refuse(request, Refusal("handshake_timeout", 408, "handshake timed out"))
        refused = decision.reason
        if refused != "ok":  # the layer's refusal (decision.ok is False)
            headers: dict[str, str] = {}
            if decision.status == 401 and sec.credentials_file:  # RFC 7617
                headers[str(hdrs.WWW_AUTHENTICATE)] = 'Basic realm="ocpp-gateway"'
            return self._refuse(request, Refusal(refused, decision.status, "refused", headers))
        info = ConnectionInfo(charge_point_id, version, request.remote)
        if runtime.chain is not None:
            try:
                verdict = runtime.chain.on_connect(info)
            except Exception:
                log.exception("plugin on_connect failed")
                return self._refuse(request, Refusal("plugin_error", 500, "refused"))
            if isinstance(verdict, Reject):
                return self._refuse(request, Refusal("plugin", 403, "refused"))
        return await self._take_over(request, ws, info, offered, decision.authenticated)

    def _holder(self, charge_point_id: str) -> Connection | None:
        """Raise _Refused when another handshake holds the id; return the live connection."""
        if charge_point_id in self._registry.reserved:
            raise _Refused
        return self._registry.holder(charge_point_id)

    async def _may_displace(self, live: Connection, authenticated: bool) -> str | None:
        """Apply the takeover policy to a newcomer; nothing is closed here.

        Returns:
            "replaced" or "replaced_dead" when the newcomer may displace `live`, None when it
            must be refused.
        """
        sec = self._runtime.config.security
        rule = takeover_rule(
            sec.takeover, authenticated, bool(sec.credentials_file or sec.client_ca)
        )
        if rule == "replace":
            return "replaced"
        if rule == "refuse" or await live.answers_ping():
            return None
        return "replaced_dead"

    async def _may_displace_elsewhere(
        self, transport: SharedOwnership, charge_point_id: str, authenticated: bool
    ) -> str | None:
        """The takeover policy for an identity another gateway node may hold (a broker
        transport); that node's connection is ended by the ownership claim of `open`.

        Returns:
            "free" (no other node holds it), "replaced" or "replaced_dead" (the newcomer may
            displace it), None (refuse the newcomer).

        Raises:
            TransportUnavailable: the broker cannot be asked.
        """
        sec = self._runtime.config.security
        rule = takeover_rule(
            sec.takeover, authenticated, bool(sec.credentials_file or sec.client_ca)
        )
        if rule == "replace":
            return "free"  # not asked: the claim displaces whoever holds it
        # The holder's node pings within takeover_ping_timeout; a second more for the broker.
        limit = sec.takeover_ping_timeout + 1.0
        holder = await transport.held_elsewhere(charge_point_id, rule == "ping", limit)
        if holder == "free":
            return "free"
        if holder == "live" or rule == "refuse":
            return None
        return "replaced_dead"

    async def _take_over(
        self,
        request: web.Request,
        ws: _OcppWebSocket,
        info: ConnectionInfo,
        offered: dict[OcppVersionName, str],
        authenticated: bool,
    ) -> Connection | web.StreamResponse:
        runtime = self._runtime
        charge_point_id = info.charge_point_id
        takeovers = runtime.metrics.takeovers
        try:
            victim = self._holder(charge_point_id)
            outcome = None
            if victim is not None:
                outcome = await self._may_displace(victim, authenticated)
                if outcome is None:
                    raise _Refused
                # While the ping was out, the live one may have left (then the id is free) or
                # another newcomer may have taken the id (then refuse).
                now_live = self._holder(charge_point_id)
                if now_live is None:
                    victim = outcome = None
                elif now_live is not victim:
                    raise _Refused
        except _Refused:
            takeovers.labels("refused").inc()
            return self._refuse(request, Refusal("takeover", 409, "charge point already connected"))
        # Reserved until the connection is registered: concurrent newcomers get 409.
        registry = self._registry
        with registry.reserve(charge_point_id):
            transport = runtime.default_transport
            elsewhere: str | None = None
            try:
                shared = runtime.shared_ownership
                if victim is None and shared is not None:
                    # Held on another node? The same rule as for a connection held here.
                    elsewhere = await self._may_displace_elsewhere(
                        shared, charge_point_id, authenticated
                    )
                    if elsewhere is None:
                        takeovers.labels("refused").inc()
                        refusal = Refusal("takeover", 409, "charge point already connected")
                        return self._refuse(request, refusal)
                link = await transport.open(charge_point_id, tuple(offered))
                if elsewhere is not None and elsewhere != "free":
                    # Counted once the claim displaced it (the other node closes that socket).
                    takeovers.labels(elsewhere).inc()
            except TransportUnavailable as exc:
                runtime.metrics.upstream_connect_failures.labels(transport.name).inc()
                refusal = Refusal("upstream_unavailable", 503, "backend unavailable")
                return self._refuse(request, dataclasses.replace(refusal, detail=str(exc)))
            # The backend chose among the charge point's versions: accept it with that one.
            if link.version != info.version:
                version = _VERSIONS[link.version]
                info = dataclasses.replace(info, version=version)
                ws.choose(offered[version])
            try:
                if request.transport is None or request.transport.is_closing():
                    raise ConnectionResetError("charge point left during the handshake")
                if victim is not None and outcome is not None:
                    # The live connection goes only now that the newcomer can be served.
                    takeovers.labels(outcome).inc()
                    if outcome == "replaced":
                        await victim.close(CLOSE_POLICY, "replaced", "takeover")
                    else:
                        await victim.close(CLOSE_GOING_AWAY, "unresponsive", "takeover")
                await ws.prepare(request)
                release_handshake_state(request, ws)
            except (ConnectionError, RuntimeError) as exc:
                # The charge point gave up while we waited for the backend (flaky networks,
                # its own timeout): a normal event, counted, not an error.
                runtime.metrics.handshakes_refused.labels("client_gone").inc()
                log.info(
                    "charge point left during the handshake",
                    extra={
                        "charge_point_id": charge_point_id,
                        "remote": request.remote,
                        "error": str(exc),
                    },
                )
                await link.close()
                return web.Response(status=499)
            except BaseException:
                await link.close()
                raise
            conn = Connection(runtime, registry, request, ws, info, link)
            registry.admit(conn)
        log.info(
            "charge point connected",
            extra={
                "charge_point_id": charge_point_id,
                "remote": info.remote,
                "subprotocol": conn.version,
            },
        )
        return conn
