"""The gateway server: aiohttp WebSocket endpoint, per-connection relay through a `_core.Session`.

One task reads the charge point socket, one task per backend link reads the backend; every frame
both ways is judged by the connection's Session and either forwarded as the exact bytes received,
answered (verdict.reply), replaced (verdict.substitute) or dropped.

Handshake order (all before the upgrade, so a refusal is a plain HTTP status):
1. path rules (identity at most 48 characters, no colon): 400 / 404;
2. draining: 503;
3. security check (authentication, limits): the status it chooses;
4. plugins' on_connect: 403 on Reject, 500 when a plugin fails;
5. identity takeover policy: 409 when the newcomer may not displace a live connection (the live
   one may be pinged first; nothing is closed yet);
6. the upstream link is opened: 503 when it cannot be (the charger retries later);
7. only now is a displaced live connection closed, and the upgrade completed.
When the charge point offers no OCPP subprotocol we know, the handshake completes without a
subprotocol and the socket is closed at once (1002); nothing reaches a backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import orjson
from aiohttp import WSMsgType, hdrs, web
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict

from ocpp_gateway import _core
from ocpp_gateway._core import ModeName, OcppVersionName
from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.errors import PluginError, TransportUnavailable
from ocpp_gateway.metrics import CONTENT_TYPE, Metrics
from ocpp_gateway.routing import (
    Chain,
    ConnectionInfo,
    Forward,
    MessageView,
    Reject,
    Reply,
    build_chain,
    check_forward_targets,
)
from ocpp_gateway.security import SecurityLayer, build_security
from ocpp_gateway.security.outbound import SendFrame, bounded_sender
from ocpp_gateway.session import default_schemas, official_schema_dir
from ocpp_gateway.transports import DEFAULT_TRANSPORT, Link, Transport, build_transports

__all__ = ["SUBPROTOCOLS", "RunningGateway", "negotiate_subprotocol", "start_gateway"]

log = logging.getLogger("ocpp_gateway.server")

SUBPROTOCOLS: tuple[OcppVersionName, ...] = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
# Lower-cased offered token -> the version name (typed, so no cast is needed later).
_VERSIONS: dict[str, OcppVersionName] = {version: version for version in SUBPROTOCOLS}
MAX_ID_LENGTH = 48
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_PING = WSMsgType.PING
_PONG = WSMsgType.PONG
_CP: Literal["cp_to_csms"] = "cp_to_csms"
_CSMS: Literal["csms_to_cp"] = "csms_to_cp"
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
# Close code of the charge point socket by close reason (others: 1001).
_CLOSE_CODES = {"upstream_lost": CLOSE_TRY_AGAIN, "internal_error": CLOSE_INTERNAL_ERROR}
_TRANSACTION_ACTIONS = frozenset(
    {"StartTransaction", "StopTransaction", "TransactionEvent", "SecurityEventNotification"}
)
Direction = Literal["cp_to_csms", "csms_to_cp"]


def negotiate_subprotocol(
    header_values: Iterable[str], supported: Iterable[str] = SUBPROTOCOLS
) -> str | None:
    """Pick the OCPP subprotocol from Sec-WebSocket-Protocol header values.

    Tolerant of odd clients: several header lines, empty items (leading or doubled commas),
    spaces and letter case. The client's order of preference wins (RFC 6455 §4.1).

    Args:
        header_values: every Sec-WebSocket-Protocol header value of the request.
        supported: the versions the gateway serves (lower case).

    Returns:
        The offered token exactly as the client spelled it, or None when none is an OCPP version.
    """
    known = frozenset(supported)
    for value in header_values:
        for token in value.split(","):
            name = token.strip()
            if name.lower() in known:
                return name
    return None


class _OcppWebSocket(web.WebSocketResponse):
    """A WebSocketResponse that answers with the subprotocol we negotiated ourselves."""

    def __init__(self, chosen: str | None, **kwargs: Any) -> None:
        super().__init__(protocols=(chosen,) if chosen else (), **kwargs)
        self._chosen = chosen

    def _handshake(self, request: BaseRequest) -> tuple[CIMultiDict[str], str | None, int, bool]:
        headers, _, compress, notakeover = super()._handshake(request)
        if self._chosen is not None:
            headers[hdrs.SEC_WEBSOCKET_PROTOCOL] = self._chosen
        else:
            headers.popall(hdrs.SEC_WEBSOCKET_PROTOCOL, None)
        return headers, self._chosen, compress, notakeover


def _mode(name: str) -> ModeName:
    """A validation mode already checked by the configuration loader."""
    if name not in ("enforce", "observe", "off"):
        raise ValueError(f"unknown validation mode {name!r}")
    return cast(ModeName, name)


def _policy_table(default: str, table: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    overrides = dict(table)
    return overrides.pop("default", default), overrides


@dataclass(slots=True, eq=False)
class _Connection:
    """The state of one charge point connection."""

    charge_point_id: str
    version: OcppVersionName
    ws: web.WebSocketResponse
    session: _core.Session
    info: ConnectionInfo
    links: dict[str, Link] = field(default_factory=dict)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    call_origin: dict[str, str] = field(default_factory=dict)
    close_reason: str | None = None
    last_seen: float = 0.0  # loop time of the last frame received from the charge point
    closing: asyncio.Future[None] | None = None  # a close started by a timer
    pong_waiter: asyncio.Future[None] | None = None
    ping_probe: asyncio.Future[bool] | None = None  # one takeover ping shared by newcomers
    send_cp: SendFrame = field(init=False)  # bounded sender (security engineer)


class _Refused(Exception):
    """The identity-takeover policy refuses a newcomer (409)."""


class _Gateway:
    """Everything one gateway process holds; built once from the configuration."""

    def __init__(self, config: GatewayConfig, metrics_dir: str | None) -> None:
        self.config = config
        self.schemas: dict[str, _core.SchemaSet] = {}
        for version in SUBPROTOCOLS:
            extra = [
                os.path.join(d, version)
                for d in config.validation.schema_dirs
                if os.path.isdir(os.path.join(d, version))
            ]
            try:
                if extra:
                    official = str(official_schema_dir(version))
                    schemas = _core.SchemaSet(version, official, extra)
                else:
                    schemas = default_schemas(version)
            except (ValueError, OSError) as exc:
                # A version whose schemas cannot be compiled is not offered; the others serve.
                log.error("schemas unavailable", extra={"version": version, "error": str(exc)})
                continue
            self.schemas[version] = schemas
        if not self.schemas:
            raise _core.SchemaError("no OCPP version has usable schemas")
        self.versions = tuple(self.schemas)
        known = {action for s in self.schemas.values() for action, _ in s.actions()}
        self.metrics = Metrics(known, multiprocess_dir=metrics_dir)
        validation = config.validation
        self.policies: dict[str, _core.Policy] = {}
        self.model_policies: dict[tuple[str, str], _core.Policy] = {}
        for version in SUBPROTOCOLS:
            version_table = validation.versions.get(version, {})
            default, version_overrides = _policy_table(validation.default, version_table)
            merged = {**validation.overrides, **version_overrides}
            self.policies[version] = _core.Policy(_mode(default), merged)
            for model, table in validation.models.items():
                model_default, model_overrides = _policy_table(default, table)
                self.model_policies[(version, model)] = _core.Policy(
                    _mode(model_default),
                    {**merged, **model_overrides},
                )
        self.chain: Chain | None = build_chain(config.plugins)
        self.transports: dict[str, Transport] = build_transports(config)
        unknown_targets = check_forward_targets(self.chain, self.transports)
        if unknown_targets:
            raise PluginError("; ".join(unknown_targets))
        # With transports besides the default one, a charge point may talk to several
        # backends: remember which one made each call (`_Connection.call_origin`).
        self.track_origins = self.chain is not None and len(self.transports) > 1
        self.default_transport = self.transports[DEFAULT_TRANSPORT]
        self.security: SecurityLayer = build_security(config.security, self.metrics)
        self.live: dict[str, _Connection] = {}
        self.connections: set[_Connection] = set()
        self.accepting = True
        self.call_timeout = config.call_timeout
        self._gauges = {v: self.metrics.connected.labels(v) for v in self.versions}
        self._handshake_ids: set[str] = set()
        # Set while draining; the relay loops poke it whenever a result went by.
        self.drain_progress: asyncio.Event | None = None

    # -- HTTP endpoints -----------------------------------------------------------------------

    async def handle_metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def handle_healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "connections": len(self.connections)})

    async def handle_readyz(self, request: web.Request) -> web.Response:
        ready = self.accepting and bool(self.schemas)
        return web.json_response(
            {"ready": ready, "accepting": self.accepting, "schemas": sorted(self.schemas)},
            status=200 if ready else 503,
        )

    # -- handshake ----------------------------------------------------------------------------

    def _refuse(self, reason: str, status: int, text: str) -> web.Response:
        self.metrics.handshakes_refused.labels(reason).inc()
        return web.Response(status=status, text=text)

    async def handle_ocpp(self, request: web.Request) -> web.StreamResponse:
        charge_point_id = request.match_info["charge_point_id"]
        if not charge_point_id:
            return self._refuse("bad_path", 404, "missing charge point id")
        if len(charge_point_id) > MAX_ID_LENGTH or ":" in charge_point_id:
            return self._refuse("bad_path", 400, "invalid charge point id")
        if not self.accepting:
            return self._refuse("draining", 503, "gateway is shutting down")
        chosen = negotiate_subprotocol(
            request.headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, ()), self.versions
        )
        sec = self.config.security
        ws = _OcppWebSocket(
            chosen,
            autoping=False,
            heartbeat=sec.ping_interval if sec.ping_interval > 0 else None,
            # No receive_timeout: a timeout context per frame costs ~4 µs; expire_loop closes
            # idle connections from last_seen instead.
            receive_timeout=None,
            max_msg_size=sec.max_message_bytes,
            compress=True,
            decode_text=False,
        )
        if not ws.can_prepare(request).ok:
            return self._refuse("not_websocket", 400, "expected a WebSocket upgrade")
        if chosen is None:
            # RFC 6455 / OCPP-J §3.1: finish the handshake without a subprotocol, then close.
            self.metrics.handshakes_refused.labels("subprotocol").inc()
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.prepare(request)
                await ws.close(code=CLOSE_PROTOCOL_ERROR, message=b"no supported OCPP subprotocol")
            return ws
        version = _VERSIONS[chosen.lower()]
        try:
            async with asyncio.timeout(
                sec.handshake_timeout if sec.handshake_timeout > 0 else None
            ):
                decision = await self.security.check_handshake(request, charge_point_id)
        except TimeoutError:
            return self._refuse("handshake_timeout", 408, "handshake timed out")
        if not decision.ok:
            refusal = self._refuse(decision.reason, decision.status, "refused")
            if decision.status == 401 and sec.credentials_file:  # RFC 7617 (security engineer)
                refusal.headers[hdrs.WWW_AUTHENTICATE] = 'Basic realm="ocpp-gateway"'
            return refusal
        try:
            return await self._accept(request, ws, charge_point_id, version, decision.authenticated)
        finally:
            self.security.release(request)

    def _takeover_decision(self, charge_point_id: str) -> _Connection | None:
        """Raise _Refused when another handshake holds the id; return the live connection."""
        if charge_point_id in self._handshake_ids:
            raise _Refused
        return self.live.get(charge_point_id)

    async def _may_displace(self, live: _Connection, authenticated: bool) -> str | None:
        """Apply the identity-takeover policy to a newcomer; nothing is closed here.

        Returns:
            "replaced" or "replaced_dead" when the newcomer may displace `live`, None when it
            must be refused.
        """
        sec = self.config.security
        if sec.takeover == "refuse":
            return None
        if sec.takeover == "replace" and authenticated:
            return "replaced"
        # Ping policy (and "replace" for a newcomer that did not authenticate): only a live
        # connection that fails the ping may go, and only to a newcomer that authenticated or
        # where nobody can (no authentication configured: a charger whose old TCP connection
        # is half-open must be able to come back).
        if not authenticated and (sec.credentials_file or sec.client_ca):
            return None
        if await self._answers_ping(live):
            return None
        return "replaced_dead"

    def _answers_ping(self, conn: _Connection) -> asyncio.Future[bool]:
        """Ping `conn` once for every newcomer that asks while the ping is out (shared)."""
        probe = conn.ping_probe
        if probe is None or probe.done():
            probe = conn.ping_probe = asyncio.ensure_future(self._ping(conn))
        return asyncio.shield(probe)

    async def _ping(self, conn: _Connection) -> bool:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        conn.pong_waiter = waiter
        try:
            await conn.ws.ping(b"takeover")
            await asyncio.wait_for(waiter, self.config.security.takeover_ping_timeout)
        except (TimeoutError, ConnectionError, RuntimeError):
            return False
        finally:
            conn.pong_waiter = None
        return True

    async def _accept(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        charge_point_id: str,
        version: OcppVersionName,
        authenticated: bool,
    ) -> web.StreamResponse:
        info = ConnectionInfo(charge_point_id, version, request.remote)
        if self.chain is not None:
            try:
                verdict = self.chain.on_connect(info)
            except Exception:
                log.exception("plugin on_connect failed")
                return self._refuse("plugin_error", 500, "refused")
            if isinstance(verdict, Reject):
                return self._refuse("plugin", 403, "refused")
        takeovers = self.metrics.takeovers
        try:
            victim = self._takeover_decision(charge_point_id)
            outcome = None
            if victim is not None:
                outcome = await self._may_displace(victim, authenticated)
                if outcome is None:
                    raise _Refused
                # While the ping was out, the live one may have left (then the id is free) or
                # another newcomer may have taken the id (then refuse).
                now_live = self._takeover_decision(charge_point_id)
                if now_live is None:
                    victim = outcome = None
                elif now_live is not victim:
                    raise _Refused
        except _Refused:
            takeovers.labels("refused").inc()
            return self._refuse("takeover", 409, "charge point already connected")
        # Reserved from here until _run registers the connection: concurrent newcomers get 409.
        self._handshake_ids.add(charge_point_id)
        try:
            try:
                link = await self.default_transport.open(charge_point_id, version)
            except TransportUnavailable:
                self.metrics.upstream_connect_failures.labels(self.default_transport.name).inc()
                return self._refuse("upstream_unavailable", 503, "backend unavailable")
            try:
                if _client_gone(request):
                    raise ConnectionResetError("charge point left during the handshake")
                if victim is not None and outcome is not None:
                    # The live connection goes only now that the newcomer can be served.
                    takeovers.labels(outcome).inc()
                    code = CLOSE_POLICY if outcome == "replaced" else CLOSE_GOING_AWAY
                    await self._close_connection(
                        victim,
                        code,
                        "replaced" if code == CLOSE_POLICY else "unresponsive",
                        "takeover",
                    )
                await ws.prepare(request)
            except (ConnectionError, RuntimeError) as exc:
                # The charge point gave up while we waited for the backend (flaky networks,
                # its own timeout): a normal event, counted, not an error.
                self.metrics.handshakes_refused.labels("client_gone").inc()
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "charge point left during the handshake",
                        extra={"charge_point_id": charge_point_id, "error": str(exc)},
                    )
                await link.close()
                return web.Response(status=499)
            except BaseException:
                await link.close()
                raise
        finally:
            self._handshake_ids.discard(charge_point_id)
        session = _core.Session(
            version,
            self.schemas[version],
            self.policies[version],
            self.call_timeout,
        )
        conn = _Connection(charge_point_id, version, ws, session, info)
        conn.links[DEFAULT_TRANSPORT] = link
        conn.send_cp = self._bounded_sender(conn, request)
        await self._run(conn)
        return ws

    def _bounded_sender(self, conn: _Connection, request: web.Request) -> SendFrame:
        """Sends to the charge point closing a slow reader with 1008 (security engineer)."""

        def slow_reader() -> None:
            conn.close_reason = conn.close_reason or "slow_reader"

        sec = self.config.security
        return bounded_sender(
            conn.ws,
            request.transport,
            sec.max_outbound_queue_bytes,
            sec.slow_reader_grace,
            slow_reader,
        )

    # -- relay ----------------------------------------------------------------------------

    async def _run(self, conn: _Connection) -> None:
        conn.last_seen = asyncio.get_running_loop().time()
        self.live[conn.charge_point_id] = conn
        self.connections.add(conn)
        gauge = self._gauges[conn.version]
        gauge.inc()
        conn.readers.append(
            asyncio.create_task(
                self._backend_loop(conn, DEFAULT_TRANSPORT, conn.links[DEFAULT_TRANSPORT])
            )
        )
        debug = log.isEnabledFor(logging.DEBUG)
        if debug:
            log.debug("connected", extra={"charge_point_id": conn.charge_point_id})
        try:
            await self._charge_point_loop(conn)
        except Exception:
            log.exception("connection failed", extra={"charge_point_id": conn.charge_point_id})
            conn.close_reason = conn.close_reason or "internal_error"
        finally:
            gauge.dec()
            self.connections.discard(conn)
            if self.live.get(conn.charge_point_id) is conn:
                del self.live[conn.charge_point_id]
            for task in conn.readers:
                task.cancel()
            await asyncio.gather(*conn.readers, return_exceptions=True)
            for link in conn.links.values():
                await link.close()
            if not conn.ws.closed:
                code = _CLOSE_CODES.get(conn.close_reason or "", CLOSE_GOING_AWAY)
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.close(code=code)
            self.metrics.connections_closed.labels(conn.close_reason or "charge_point_closed").inc()
            if self.drain_progress is not None:
                self.drain_progress.set()
            if self.chain is not None:
                self.chain.on_disconnect(conn.info)
            if debug:
                log.debug("disconnected", extra={"charge_point_id": conn.charge_point_id})

    def _maybe_switch_model_policy(self, conn: _Connection, frame: bytes) -> None:
        """After a BootNotification was forwarded, switch to the policy of its model."""
        try:
            payload = orjson.loads(frame)[3]
            if conn.version == "ocpp1.6":
                model = payload.get("chargePointModel")
            else:
                model = payload.get("chargingStation", {}).get("model")
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError, AttributeError):
            return
        if isinstance(model, str):
            policy = self.model_policies.get((conn.version, model))
            if policy is not None:
                conn.session.policy = policy

    def _result_seen(
        self, conn: _Connection, direction: Direction, verdict: _core.Verdict, data: bytes
    ) -> None:
        """Bookkeeping of a forwarded result (or SEND), the same in both directions."""
        duration = verdict.call_duration
        if duration is not None:
            # A result travelling one way answers a call that travelled the other way.
            self.metrics.observe_duration(
                _CSMS if direction == _CP else _CP, verdict.action, duration
            )
        if self.drain_progress is not None:
            self.drain_progress.set()
        if self.chain is not None:
            self._plugin_result(conn, direction, verdict, data)

    async def _charge_point_loop(self, conn: _Connection) -> None:
        ws = conn.ws
        session = conn.session
        metrics = self.metrics
        count = metrics.count_message
        size = metrics.observe_size
        judge = session.from_charge_point
        loop = asyncio.get_running_loop()
        limiter = self.security.new_rate_limiter()
        allow = limiter.allow
        chain = self.chain
        models = bool(self.model_policies)
        link_send = conn.links[DEFAULT_TRANSPORT].send
        send_cp = conn.send_cp
        call_origin = conn.call_origin
        while True:
            msg = await ws.receive()
            now = conn.last_seen = loop.time()
            kind = msg.type
            if kind is _TEXT or kind is _BINARY:
                data: bytes = msg.data
                size(_CP, len(data))
                verdict = judge(data, now)
                message_type = verdict.message_type
                # Results are never rate-limited: they answer calls the backend made.
                if (message_type < 3 or message_type > 5) and not allow(now):
                    if not await self._rate_limited(conn, verdict, data):
                        return
                    continue
                origin = DEFAULT_TRANSPORT
                if call_origin and 3 <= message_type <= 5:
                    # Popped before branching: a result that is replaced still goes home.
                    origin = call_origin.pop(verdict.unique_id or "", DEFAULT_TRANSPORT)
                if verdict.forward:
                    action = verdict.action
                    count(_CP, message_type, action)
                    if verdict.observed:
                        self._count_observed(_CP, verdict)
                    if message_type != 2:
                        self._result_seen(conn, _CP, verdict, data)
                    else:
                        if models and action == "BootNotification":
                            self._maybe_switch_model_policy(conn, data)
                        if chain is not None and await self._plugin_call(conn, _CP, verdict, data):
                            continue
                    out: bytes | None = data
                else:
                    out = verdict.substitute
                    reply = verdict.reply
                    if reply is not None or out is not None:
                        metrics.count_rejected(_CP, verdict.action, verdict.error_code or "unknown")
                        if reply is not None:
                            await send_cp(reply, _TEXT)
                    else:
                        self._count_drop(_CP, verdict)
                if out is None:
                    continue
                if origin == DEFAULT_TRANSPORT:
                    try:
                        await link_send(out)
                    except (TransportUnavailable, ConnectionError):
                        conn.close_reason = "upstream_lost"
                        return
                elif not await self._send_backend(conn, origin, out):
                    return
            elif kind is _PING:
                await ws.pong(msg.data)
            elif kind is _PONG:
                waiter = conn.pong_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            else:
                if conn.close_reason is None:
                    conn.close_reason = _close_reason(ws, msg.data)
                return

    async def _backend_loop(self, conn: _Connection, name: str, link: Link) -> None:
        ws = conn.ws
        session = conn.session
        metrics = self.metrics
        count = metrics.count_message
        size = metrics.observe_size
        judge = session.from_csms
        loop = asyncio.get_running_loop()
        chain = self.chain
        send_cp = conn.send_cp
        call_origin = conn.call_origin
        track = self.track_origins
        code = CLOSE_TRY_AGAIN
        try:
            while True:
                data = await link.recv()
                if data is None:
                    break
                now = loop.time()
                size(_CSMS, len(data))
                verdict = judge(data, now)
                if verdict.forward:
                    message_type = verdict.message_type
                    count(_CSMS, message_type, verdict.action)
                    if verdict.observed:
                        self._count_observed(_CSMS, verdict)
                    if message_type != 2:
                        self._result_seen(conn, _CSMS, verdict, data)
                    else:
                        unique_id = verdict.unique_id
                        if track and unique_id is not None:
                            # The charge point's answer must go back to this backend. The
                            # session takes the same UniqueId and action again as a
                            # retransmission; from another backend it is a collision.
                            owner = call_origin.setdefault(unique_id, name)
                            if owner != name:
                                await self._refuse_collision(conn, link, verdict)
                                continue
                        if chain is not None and await self._plugin_call(
                            conn, _CSMS, verdict, data, origin=name
                        ):
                            if track and unique_id is not None:
                                call_origin.pop(unique_id, None)
                            continue
                    await send_cp(data, _TEXT)
                else:
                    reply = verdict.reply
                    substitute = verdict.substitute
                    if reply is not None or substitute is not None:
                        metrics.count_rejected(
                            _CSMS, verdict.action, verdict.error_code or "unknown"
                        )
                        if reply is not None:
                            await link.send(reply)
                        if substitute is not None:
                            await send_cp(substitute, _TEXT)
                    else:
                        self._count_drop(_CSMS, verdict)
        except (TransportUnavailable, ConnectionError):
            pass
        except asyncio.CancelledError:
            return
        except Exception:
            log.exception("backend relay failed", extra={"transport": name})
            conn.close_reason = conn.close_reason or "internal_error"
            code = CLOSE_INTERNAL_ERROR
        # The backend is gone: close the charge point socket so that it queues its
        # transaction messages itself (Local Controller rule); never answer on its behalf.
        if conn.close_reason is None:
            conn.close_reason = "upstream_lost"
        if not ws.closed:
            message = b"backend connection lost" if code == CLOSE_TRY_AGAIN else b"internal error"
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close(code=code, message=message)

    # -- slow paths -----------------------------------------------------------------------

    def _count_observed(self, direction: str, verdict: _core.Verdict) -> None:
        self.metrics.observed_violations.labels(
            direction, self.metrics.action_label(verdict.action), verdict.error_code or "unknown"
        ).inc()

    def _count_drop(self, direction: str, verdict: _core.Verdict) -> None:
        reason = verdict.drop_reason or "unknown"
        if reason == "unmatched_result":
            self.metrics.unmatched_results.labels(direction).inc()
        self.metrics.dropped.labels(direction, reason).inc()

    async def _rate_limited(self, conn: _Connection, verdict: _core.Verdict, data: bytes) -> bool:
        """Handle a CALL (or unreadable frame) over the rate, already judged by the session.

        With rate_excess "callerror", a valid CALL is answered with a CALLERROR, except a
        transaction message (DESIGN: never answer those with a CALLERROR; the connection is
        closed instead, so the charger keeps the message); an invalid frame gets the session's
        own answer; anything else is dropped.

        Returns:
            False when the connection must end.
        """
        self.metrics.rate_limited.labels(self.metrics.action_label(verdict.action)).inc()
        if self.config.security.rate_excess == "close" or (
            verdict.forward and verdict.message_type == 2 and _is_transaction_message(verdict, data)
        ):
            conn.close_reason = "rate_limited"
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.ws.close(code=CLOSE_POLICY, message=b"message rate exceeded")
            return False
        if not verdict.forward:
            if verdict.reply is not None:
                await conn.send_cp(verdict.reply, _TEXT)
            return True
        if verdict.message_type == 2 and verdict.unique_id is not None:
            code = _core.error_code_for(conn.version, "generic")
            frame = orjson.dumps([4, verdict.unique_id, code, "Message rate exceeded", {}])
            now = asyncio.get_running_loop().time()
            answer = conn.session.from_csms(frame, now)  # clears the pending call
            if answer.forward:
                await conn.send_cp(frame, _TEXT)
        return True

    async def _refuse_collision(
        self, conn: _Connection, link: Link, verdict: _core.Verdict
    ) -> None:
        """Answer a backend whose CALL reuses the UniqueId of another backend's pending call."""
        code = _core.error_code_for(conn.version, "framework")
        self.metrics.count_rejected(_CSMS, verdict.action, code)
        detail = "UniqueId in use by a pending call of another backend"
        await link.send(orjson.dumps([4, verdict.unique_id, code, detail, {}]))

    def _plugin_result(
        self, conn: _Connection, direction: Direction, verdict: _core.Verdict, data: bytes
    ) -> None:
        assert self.chain is not None
        try:
            self.chain.on_call_result(_view(conn, direction, verdict, data))
        except Exception:
            log.exception("plugin on_call_result failed")

    async def _plugin_call(
        self,
        conn: _Connection,
        direction: Direction,
        verdict: _core.Verdict,
        data: bytes,
        origin: str = DEFAULT_TRANSPORT,
    ) -> bool:
        """Ask the chain about a CALL. Returns True when the plugins handled it."""
        assert self.chain is not None
        try:
            decision = self.chain.on_call(_view(conn, direction, verdict, data))
        except Exception:
            log.exception("plugin on_call failed")
            return False
        if isinstance(decision, Forward):
            if direction != _CP or decision.transport == DEFAULT_TRANSPORT:
                return False
            await self._send_backend(conn, decision.transport, data)
            return True
        if isinstance(decision, Reply | Reject):
            unique_id = verdict.unique_id
            if isinstance(decision, Reply):
                frame = orjson.dumps([3, unique_id, dict(decision.payload)])
            else:
                frame = orjson.dumps([4, unique_id, decision.error_code, decision.description, {}])
            now = asyncio.get_running_loop().time()
            if direction == _CP:
                answer = conn.session.from_csms(frame, now)
                if answer.call_duration is not None:
                    self.metrics.observe_duration(_CP, answer.action, answer.call_duration)
                out = frame if answer.forward else answer.substitute
                if out is not None:
                    await conn.send_cp(out, _TEXT)
            else:
                answer = conn.session.from_charge_point(frame, now)
                if answer.call_duration is not None:
                    self.metrics.observe_duration(_CSMS, answer.action, answer.call_duration)
                out = frame if answer.forward else answer.substitute
                if out is not None:
                    await self._send_backend(conn, origin, out)
            return True
        return False

    async def _send_backend(self, conn: _Connection, name: str, data: bytes) -> bool:
        """Send to the named backend, opening its link on first use.

        Returns:
            False when the charge point's connection is being closed (link lost or unknown).
        """
        link = conn.links.get(name)
        if link is None:
            transport = self.transports.get(name)
            if transport is None:
                log.error("plugin forwarded to an unknown transport", extra={"transport": name})
                conn.close_reason = "internal_error"
                await conn.ws.close(code=CLOSE_INTERNAL_ERROR, message=b"routing error")
                return False
            try:
                link = await transport.open(conn.charge_point_id, conn.version)
            except TransportUnavailable:
                self.metrics.upstream_connect_failures.labels(name).inc()
                conn.close_reason = "upstream_lost"
                await conn.ws.close(code=CLOSE_TRY_AGAIN, message=b"backend unavailable")
                return False
            conn.links[name] = link
            conn.readers.append(asyncio.create_task(self._backend_loop(conn, name, link)))
        try:
            await link.send(data)
        except (TransportUnavailable, ConnectionError):
            conn.close_reason = "upstream_lost"
            await conn.ws.close(code=CLOSE_TRY_AGAIN, message=b"backend connection lost")
            return False
        return True

    async def _close_connection(
        self, conn: _Connection, code: int, message: str, reason: str
    ) -> None:
        conn.close_reason = reason
        if self.live.get(conn.charge_point_id) is conn:
            del self.live[conn.charge_point_id]
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.close(code=code, message=message.encode())

    # -- timers and shutdown --------------------------------------------------------------

    async def expire_loop(self) -> None:
        """One timer per process, about once a second: runs `tick`."""
        idle_timeout = self.config.security.idle_timeout
        interval = min(1.0, max(0.05, self.call_timeout / 4))
        if idle_timeout > 0:
            interval = min(interval, max(0.05, idle_timeout / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            self.tick(loop.time())

    def tick(self, now: float) -> None:
        """Forget calls older than call_timeout (counted, and their origins dropped), close
        connections idle for longer than idle_timeout, flush the batched metrics.

        Args:
            now: the event loop's time.
        """
        idle_timeout = self.config.security.idle_timeout
        timed_out = self.metrics.pending_timed_out
        label = self.metrics.action_label
        for conn in list(self.connections):
            for direction, unique_id, action in conn.session.expire(now):
                timed_out.labels(direction, label(action)).inc()
                if direction == _CSMS and conn.call_origin:
                    conn.call_origin.pop(unique_id, None)
            if idle_timeout > 0 and now - conn.last_seen > idle_timeout:
                conn.close_reason = conn.close_reason or "idle_timeout"
                self._spawn_close(conn, CLOSE_GOING_AWAY, "idle timeout")
        self.metrics.flush()

    def _spawn_close(self, conn: _Connection, code: int, message: str) -> None:
        """Close a connection without making the timer wait for the close handshake."""
        if conn.closing is None:
            conn.closing = asyncio.ensure_future(
                self._close_connection(conn, code, message, conn.close_reason or "shutdown")
            )

    async def drain(self, grace: float) -> None:
        """Stop accepting, wait up to `grace` seconds for pending calls, then close every socket
        (1001) at once; the whole drain takes about `grace` seconds at most (at least 1 s is
        left for the close handshakes)."""
        self.accepting = False
        progress = self.drain_progress = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(c.session.pending() for c in self.connections):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), remaining)
        closing = [
            asyncio.ensure_future(
                self._close_connection(conn, CLOSE_GOING_AWAY, "gateway shutting down", "shutdown")
            )
            for conn in list(self.connections)
        ]
        if closing:
            _, late = await asyncio.wait(closing, timeout=max(deadline - loop.time(), 1.0))
            for task in late:
                task.cancel()
        for transport in self.transports.values():
            await transport.close()
        self.metrics.flush()


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _view(
    conn: _Connection, direction: Direction, verdict: _core.Verdict, data: bytes
) -> MessageView:
    return MessageView(
        conn.info, direction, verdict.message_type, verdict.unique_id, verdict.action, data
    )


def _close_reason(ws: web.WebSocketResponse, data: object) -> str:
    """Why the charge point's receive loop ended, as a connections_closed_total reason."""
    # After aiohttp's own close handshake ws.close_code is the peer's echo (or 1006), so read
    # the 1009 from the error message itself (security engineer).
    if getattr(data, "code", None) == 1009 or ws.close_code == 1009:
        return "message_too_big"
    if isinstance(data, TimeoutError):  # aiohttp's heartbeat: no pong to its ping
        return "idle_timeout"
    return "charge_point_closed"


def _is_transaction_message(verdict: _core.Verdict, data: bytes) -> bool:
    """DESIGN "Rules that keep data safe": messages a charger must not lose to a CALLERROR."""
    action = verdict.action
    if action in _TRANSACTION_ACTIONS:
        return True
    if action != "MeterValues":
        return False
    try:
        payload = orjson.loads(data)[3]
    except (orjson.JSONDecodeError, IndexError, TypeError):
        return False
    return isinstance(payload, dict) and payload.get("transactionId") is not None


class RunningGateway:
    """A gateway serving on a port. Build it with `start_gateway`.

    Attributes:
        host: the address it listens on.
        port: the real port (also when the configuration asked for 0).
        url: "ws://127.0.0.1:PORT" (or "wss://" with TLS); charge points use `{url}/ocpp/{id}`.
        metrics: the Metrics object.
        config: the configuration it runs with.
    """

    def __init__(
        self,
        gateway: _Gateway,
        runner: web.AppRunner,
        host: str,
        port: int,
        scheme: str,
        expire_task: asyncio.Task[None],
    ) -> None:
        self._gateway = gateway
        self._runner = runner
        self._expire_task = expire_task
        self.host = host
        self.port = port
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        if ":" in connect_host:
            connect_host = f"[{connect_host}]"
        self.url = f"{scheme}://{connect_host}:{port}"
        self.metrics = gateway.metrics
        self.config = gateway.config
        self._stopped = False

    @property
    def connections(self) -> int:
        """Number of charge points connected now."""
        return len(self._gateway.connections)

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Stop gracefully: refuse new handshakes, let pending calls finish, close with 1001.

        Args:
            drain_timeout: seconds to wait for pending calls; the configured value when None.
        """
        if self._stopped:
            return
        self._stopped = True
        timeout = self.config.drain_timeout if drain_timeout is None else drain_timeout
        await self._gateway.drain(timeout)
        self._expire_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._expire_task
        await self._runner.cleanup()
        self._gateway.security.close()  # password verification threads (security engineer)


async def start_gateway(
    config: GatewayConfig, *, reuse_port: bool = False, metrics_dir: str | None = None
) -> RunningGateway:
    """Start serving charge points.

    Args:
        config: the configuration.
        reuse_port: bind with SO_REUSEPORT (several worker processes on one port).
        metrics_dir: prometheus_client multiprocess directory, when running several workers.

    Returns:
        The running gateway.

    Raises:
        OSError: the port cannot be bound.
        ocpp_gateway._core.SchemaError: the schemas cannot be compiled.
        ocpp_gateway.errors.PluginError: a plugin cannot be loaded.
    """
    gateway = _Gateway(config, metrics_dir)
    app = web.Application(client_max_size=config.security.max_message_bytes)
    app.router.add_get("/ocpp/{charge_point_id}", gateway.handle_ocpp)
    app.router.add_get("/metrics", gateway.handle_metrics)
    app.router.add_get("/healthz", gateway.handle_healthz)
    app.router.add_get("/readyz", gateway.handle_readyz)
    # aiohttp's keep-alive timer also runs from accept until a complete request head arrives:
    # bounding it by the handshake timeout closes slowloris sockets (security engineer).
    handshake_timeout = config.security.handshake_timeout
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=1.0,
        keepalive_timeout=handshake_timeout if handshake_timeout > 0 else 75.0,
    )
    await runner.setup()
    ssl_context = gateway.security.ssl_context()
    site = web.TCPSite(
        runner,
        config.host,
        config.port,
        ssl_context=ssl_context,
        reuse_port=reuse_port or None,
        backlog=1024,
    )
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    server: Any = site._server
    port = config.port
    if server is not None and getattr(server, "sockets", None):
        sock: socket.socket = server.sockets[0]
        port = sock.getsockname()[1]
    expire_task = asyncio.create_task(gateway.expire_loop())
    log.info(
        "gateway listening",
        extra={
            "host": config.host,
            "port": port,
            "transport": type(gateway.default_transport).__name__,
            "plugins": list(config.plugins.enabled),
        },
    )
    return RunningGateway(
        gateway, runner, config.host, port, "wss" if ssl_context else "ws", expire_task
    )
