"""The admin listener: `/metrics`, `/healthz`, `/readyz` and the bearer-protected charge point API.

Endpoints of the API (all answer JSON; `Authorization: Bearer <admin.token>` required; without
a configured token they do not exist, 404):

- `GET /charge-points`: every connected charge point of every worker;
- `GET /charge-points/{id}`: one of them (404 when not connected);
- `POST /charge-points/{id}/calls` with `{"action": ..., "payload": {...}}`: the gateway sends
  the CALL to the charge point itself (`Connection.call`: checked strictly, one gateway call in
  flight per charge point and a bounded queue behind it) and answers with the charge point's
  result.

Against hostile clients: a client address that sends `admin.token_failures_per_minute` wrong or
missing tokens gets 429 for every API request until its budget refills (the token is then not
even compared); refusals are counted (`ocpp_gateway_admin_refused_total{reason}`) and logged at
most `REFUSAL_LINES` per 10 s, with the path cut short and never a header. The listener itself
(`listener.GuardedRunner`, built in server.py) closes connections idle or slow to send their
head after `admin.idle_timeout`, caps them at `admin.max_connections`, and answers requests
aiohttp cannot parse without echoing them; a body slower than `admin.body_timeout` gets 408.

With `--workers`, the admin port is shared by SO_REUSEPORT, so a request lands on any worker.
Every worker also serves this application on a unix socket `<peer_dir>/<worker>.sock` (a
private directory made by the supervisor); a worker that does not hold the charge point asks
the others there for exactly that id (`peer_url`: encoded once, with `?scope=worker`, which
answers for that worker only) and relays the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import monotonic
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import hdrs, web
from yarl import URL

from ocpp_gateway import _core, admin_capture, console
from ocpp_gateway.admin_peers import SCOPE_WORKER, peer_socket, peer_url
from ocpp_gateway.calls import CallAborted, CallQueueFull, CallRefused, CallTimedOut
from ocpp_gateway.connection import Connection
from ocpp_gateway.logs import Throttle
from ocpp_gateway.registry import Registry
from ocpp_gateway.security.auth import FailureThrottle

if TYPE_CHECKING:
    from ocpp_gateway.runtime import Runtime

__all__ = [
    "REFUSAL_LINES",
    "admin_ssl_context",
    "build_admin_app",
    "describe",
    "peer_socket",
    "peer_url",
    "remove_stale",
]

log = logging.getLogger("ocpp_gateway.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Refusal log lines allowed per 10 s in one process.
REFUSAL_LINES = 20
_PEER_TIMEOUT = 5.0
_MAX_ADDRESSES = 4096  # client addresses whose wrong tokens are remembered
_LOGGED_PATH = 200  # characters of a refused request's path on its log line


def admin_ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The admin listener's TLS context.

    Args:
        cert, key: the PEM files (`admin.tls_cert`, `admin.tls_key`).

    Returns:
        None when plain HTTP is configured.

    Raises:
        OSError, ssl.SSLError: the files cannot be read.
    """
    if not cert or not key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def _iso(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(runtime: Runtime, conn: Connection) -> dict[str, Any]:
    """One charge point as the API shows it.

    Args:
        runtime: its process.
        conn: its connection.

    Returns:
        id, version, connected_since (ISO 8601, UTC), remote, vendor, model, firmware (from
        the BootNotification, null until one was forwarded), worker, pending_calls, the
        frames each way so far, and its second backends (name, role, state, queued, dropped,
        reconnects; the primary is not listed).
    """
    vendor, model, firmware = conn.session.boot_info or (None, None, None)
    from_cp, to_cp = conn.session.frames()
    return {
        "id": conn.charge_point_id,
        "version": conn.version,
        "connected_since": _iso(conn.connected_at),
        "remote": conn.info.remote,
        "vendor": vendor,
        "model": model,
        "firmware": firmware,
        "worker": runtime.worker,
        "pending_calls": conn.session.pending(),
        "frames_from_charge_point": from_cp,
        "frames_to_charge_point": to_cp,
        "primary": conn.primary or None,
        "backends": [s.describe() for s in conn.sides] + [t.describe() for t in conn.taps],
    }


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str, **extra: object) -> web.Response:
    return _json({"error": message, **extra}, status)


class _Api:
    """The API handlers of one runtime."""

    def __init__(
        self, runtime: Runtime, registry: Registry[Connection], peer_dir: str | None
    ) -> None:
        self._runtime = runtime
        self._registry = registry
        self._peer_dir = peer_dir
        admin = runtime.config.admin
        self._token = admin.token.encode() if admin.token else None
        self._failures = FailureThrottle(admin.token_failures_per_minute, max_keys=_MAX_ADDRESSES)
        self._lines = Throttle(10.0, REFUSAL_LINES)
        self._refused = runtime.metrics.admin_refused

    @property
    def registry(self) -> Registry[Connection]:
        """Returns: this process's connections (for the capture endpoints and the console)."""
        return self._registry

    # -- authorisation and peers -----------------------------------------------------------

    def _authorised(self, request: web.Request) -> web.Response | None:
        """None when the request carries the token; else the refusal: 401, or 429 while the
        client's address is over its budget of wrong tokens (the token is then not checked).
        Raises HTTPNotFound when the API is off."""
        if self._token is None:
            raise web.HTTPNotFound()
        address = request.remote or "unknown"
        now = monotonic()
        if self._failures.blocked(address, now):
            return self._refuse(
                request,
                429,
                "throttled",
                "too many wrong tokens; try again later",
                {"Retry-After": "60"},
            )
        if _bearer_matches(request.headers.get(hdrs.AUTHORIZATION, ""), self._token):
            return None
        self._failures.record_failure(address, now)
        return self._refuse(
            request,
            401,
            "bad_token",
            "missing or wrong bearer token",
            {"WWW-Authenticate": 'Bearer realm="ocpp-gateway-admin"'},
        )

    def _refuse(
        self,
        request: web.Request,
        status: int,
        reason: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        """Count, log at a bounded rate (address, path cut short; never a header) and answer."""
        self._refused.labels(reason).inc()
        suppressed = self._lines.allow(monotonic())
        if suppressed is not None:
            log.info(
                "admin request refused",
                extra={
                    "remote": request.remote,
                    "path": request.path[:_LOGGED_PATH],
                    "reason": reason,
                    **({"suppressed": suppressed} if suppressed else {}),
                },
            )
        return web.Response(
            body=orjson.dumps({"error": message}),
            status=status,
            content_type="application/json",
            headers=headers,
        )

    def _peers(self, request: web.Request) -> list[str]:
        """The other workers' sockets, unless the request asks for this worker only."""
        if self._peer_dir is None or request.query.get("scope") == SCOPE_WORKER:
            return []
        own = peer_socket(self._peer_dir, self._runtime.worker)
        try:
            names = sorted(os.listdir(self._peer_dir))
        except OSError:
            return []
        paths = (os.path.join(self._peer_dir, name) for name in names if name.endswith(".sock"))
        return [path for path in paths if path != own]

    async def _ask(
        self, path: str, request: web.Request, method: str, url: URL, body: bytes | None
    ) -> tuple[int, Any] | None:
        """Send the request to the worker on socket `path`; None when it cannot be reached.

        Args:
            path: the worker's socket.
            request: the request being relayed (its Authorization header goes along).
            method: "GET" or "POST".
            url: the path to ask for, built by `peer_url` (already encoded).
            body: the body to send, if any.
        """
        headers = {"Authorization": request.headers.get(hdrs.AUTHORIZATION, "")}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            connector = aiohttp.UnixConnector(path=path)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self._peer_timeout()),
                ) as answer,
            ):
                return answer.status, orjson.loads(await answer.read())
        except (aiohttp.ClientError, OSError, TimeoutError, orjson.JSONDecodeError) as exc:
            log.warning(
                "admin peer unreachable", extra={"socket": path, "error": type(exc).__name__}
            )
            return None

    def _peer_timeout(self) -> float:
        return self._runtime.config.call_timeout + _PEER_TIMEOUT

    # -- endpoints -------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        refused = self._authorised(request)
        if refused is not None:
            return refused
        runtime = self._runtime
        found = [describe(runtime, conn) for conn in list(self._registry.live.values())]
        unreachable: list[str] = []
        peers = self._peers(request)
        url = peer_url(None)
        answers = await asyncio.gather(*(self._ask(p, request, "GET", url, None) for p in peers))
        for path, answer in zip(peers, answers, strict=True):
            if answer is None or answer[0] != 200 or not isinstance(answer[1], Mapping):
                unreachable.append(os.path.basename(path).removesuffix(".sock"))
                continue
            found.extend(answer[1].get("charge_points", ()))
        found.sort(key=lambda entry: str(entry.get("id")))
        body: dict[str, Any] = {"charge_points": found}
        if unreachable:
            body["unreachable_workers"] = unreachable
        return _json(body)

    async def candidates(self, request: web.Request) -> web.Response:
        """Each candidate backend's comparison report (`ocpp-gateway candidate-report`)."""
        refused = self._authorised(request)
        if refused is not None:
            return refused
        fanout = self._runtime.fanout
        if fanout is None:
            return _json({"primary": None, "candidates": {}})
        return _json({"primary": fanout.primary_name, "candidates": fanout.report()})

    async def cut_over(self, request: web.Request) -> web.Response:
        """Make a candidate the primary: `{"backend": name}` (every worker, each charge point
        as soon as it is quiet; the sockets stay open). The former primary becomes a candidate,
        so the same request with its name goes back."""
        refused = self._authorised(request)
        if refused is not None:
            return refused
        try:
            async with asyncio.timeout(self._runtime.config.admin.body_timeout):
                body = await request.read()
        except TimeoutError:
            self._refused.labels("body_timeout").inc()
            return _error(408, "the body did not arrive in time")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, 'the body must be JSON: {"backend": name}')
        name = parsed.get("backend") if isinstance(parsed, dict) else None
        if not isinstance(name, str):
            return _error(400, 'the body must be a JSON object {"backend": name}')
        try:
            self._runtime.cut_over(name)
        except ValueError as exc:
            return _error(409, str(exc))
        url = URL.build(scheme="http", host="worker", path="/backends/primary")
        url = url.with_query({"scope": SCOPE_WORKER})
        peers = self._peers(request)
        answers = await asyncio.gather(*(self._ask(p, request, "POST", url, body) for p in peers))
        unreachable = [
            os.path.basename(path).removesuffix(".sock")
            for path, answer in zip(peers, answers, strict=True)
            if answer is None or answer[0] != 200
        ]
        result: dict[str, Any] = {"primary": name}
        if unreachable:
            result["unreachable_workers"] = unreachable
        return _json(result)

    async def show(self, request: web.Request) -> web.Response:
        refused = self._authorised(request)
        if refused is not None:
            return refused
        charge_point_id = request.match_info["charge_point_id"]
        conn = self._registry.holder(charge_point_id)
        if conn is not None:
            return _json(describe(self._runtime, conn))
        return await self._elsewhere(request, "GET", None, charge_point_id)

    async def _elsewhere(
        self, request: web.Request, method: str, body: bytes | None, charge_point_id: str
    ) -> web.Response:
        """Relay a request about a charge point this worker does not hold to the worker that
        does; 404 when none does. The peer is asked for exactly this id: it is percent-encoded
        once into the path (never the decoded path joined again, where a `/`, `?`, `#` or
        `..` in an id would change which resource is asked for)."""
        peers = self._peers(request)
        url = peer_url(charge_point_id, "calls" if method == "POST" else "")
        answers = await asyncio.gather(*(self._ask(p, request, method, url, body) for p in peers))
        for answer in answers:
            if answer is not None and answer[0] != 404:
                return _json(answer[1], answer[0])
        return _error(404, "charge point not connected", id=charge_point_id)

    async def call(self, request: web.Request) -> web.Response:
        refused = self._authorised(request)
        if refused is not None:
            return refused
        charge_point_id = request.match_info["charge_point_id"]
        try:
            async with asyncio.timeout(self._runtime.config.admin.body_timeout):
                body = await request.read()
        except TimeoutError:
            self._refused.labels("body_timeout").inc()
            return _error(408, "the body did not arrive in time")
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "the body must be JSON: {action, payload}")
        if not isinstance(parsed, dict) or not isinstance(parsed.get("action"), str):
            return _error(400, "the body must be a JSON object with an action")
        payload = parsed.get("payload", {})
        if not isinstance(payload, dict):
            return _error(400, "payload must be a JSON object")
        conn = self._registry.holder(charge_point_id)
        if conn is None:
            return await self._elsewhere(request, "POST", body, charge_point_id)
        return await self._call(conn, parsed["action"], payload)

    async def _call(self, conn: Connection, action: str, payload: dict[str, Any]) -> web.Response:
        schemas = self._runtime.schemas[conn.version]
        try:
            answer = await conn.call(action, payload, self._runtime.config.call_timeout)
        except CallRefused as exc:
            return _error(400, "invalid call", error_code=exc.error_code, detail=exc.detail)
        except CallQueueFull:
            self._refused.labels("queue_full").inc()
            return _error(429, "too many calls wait for this charge point", id=conn.charge_point_id)
        except CallTimedOut as exc:
            if exc.unique_id is None:
                return _error(504, "the charge point was busy with earlier calls; not sent")
            return _error(504, "the charge point did not answer", unique_id=exc.unique_id)
        except CallAborted as exc:
            return _error(502, "the charge point disconnected", unique_id=exc.unique_id)
        return self._answer(schemas, action, answer.unique_id, answer.frame)

    def _answer(
        self, schemas: _core.SchemaSet, action: str, unique_id: str, answer: bytes
    ) -> web.Response:
        """The HTTP answer for the charge point's answer: 200 with the CALLRESULT payload, 502
        with the CALLERROR (or a CALLRESULT that fails its response schema)."""
        frame = orjson.loads(answer)
        if frame[0] == 3:
            result = frame[2]
            violation = schemas.validate(action, True, orjson.dumps(result))
            if violation is not None:
                return _error(
                    502,
                    "the charge point's answer fails its schema",
                    unique_id=unique_id,
                    error_code=violation[0],
                    detail=violation[1],
                    result=result,
                )
            return _json({"unique_id": unique_id, "result": result})
        return _error(
            502,
            "the charge point answered with an error",
            unique_id=unique_id,
            error_code=frame[2] if len(frame) > 2 else None,
            error_description=frame[3] if len(frame) > 3 else None,
            error_details=frame[4] if len(frame) > 4 else None,
        )


def _bearer_matches(header: str, token: bytes) -> bool:
    """Whether an Authorization header value carries the bearer token, in constant time
    whatever its bytes (aiohttp decodes header bytes 0x80-0xff to surrogates, which do not
    encode: such a header is simply wrong)."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    try:
        candidate = given.strip().encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(candidate, token)


def build_admin_app(
    runtime: Runtime,
    registry: Registry[Connection],
    health: Sequence[tuple[str, Handler]],
    peer_dir: str | None = None,
) -> web.Application:
    """The admin application.

    Args:
        runtime: the process.
        registry: its connections.
        health: (path, handler) of `/metrics`, `/healthz`, `/readyz`, shared with the charge
            point port.
        peer_dir: the directory of the workers' admin sockets under `--workers`, else None.

    Returns:
        The application (routes added).
    """
    api = _Api(runtime, registry, peer_dir)
    app = web.Application(client_max_size=runtime.config.security.max_message_bytes)
    for path, handler in health:
        app.router.add_get(path, handler)
    app.router.add_get("/charge-points", api.index)
    app.router.add_get("/charge-points/{charge_point_id}", api.show)
    app.router.add_post("/charge-points/{charge_point_id}/calls", api.call)
    app.router.add_get("/candidates", api.candidates)
    app.router.add_post("/backends/primary", api.cut_over)
    admin_capture.add_routes(app, runtime, api)  # capture, trace, live tail
    console.add_console_routes(app, runtime, api)  # the web console
    return app


async def remove_stale(path: str) -> None:
    """Remove a socket file left by a worker that crashed (a new worker takes its slot).

    Args:
        path: the socket path.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
