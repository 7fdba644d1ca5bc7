"""The admin listener: `/metrics`, `/healthz`, `/readyz` and the bearer-protected charge point API.

Endpoints of the API (all answer JSON; `Authorization: Bearer <admin.token>` required; without
a configured token they do not exist, 404):

- `GET /charge-points`: every connected charge point of every worker;
- `GET /charge-points/{id}`: one of them (404 when not connected);
- `POST /charge-points/{id}/calls` with `{"action": ..., "payload": {...}}`: the gateway sends
  the CALL to the charge point itself and answers with the charge point's result.

A call the gateway makes goes through the connection's Session like a backend's call, after a
strict check of its payload against the request schema whatever the validation policy (an
invalid one gets 400 with the core's error code and is never sent). Its UniqueId is "gw-"
followed by 32 random hex digits, so it does not collide with a backend's, and the relay hands
its answer to the connection's admin link (`connection.ADMIN_LINK` in `call_origin`), never
to a backend. The answer is checked against the response schema too.

With `--workers`, the admin port is shared by SO_REUSEPORT, so a request lands on any worker.
Every worker also serves this application on a unix socket `<peer_dir>/<worker>.sock` (a
private directory made by the supervisor); a worker that does not hold the charge point asks
the others there (with `?scope=worker`, which answers for that worker only) and relays the
answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hmac
import logging
import os
import secrets
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import monotonic
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import web

from ocpp_gateway import _core
from ocpp_gateway.connection import ADMIN_LINK, Connection
from ocpp_gateway.registry import Registry

if TYPE_CHECKING:
    from ocpp_gateway.runtime import Runtime

__all__ = [
    "AdminLink",
    "admin_ssl_context",
    "build_admin_app",
    "call_id",
    "describe",
    "peer_socket",
    "remove_stale",
]

log = logging.getLogger("ocpp_gateway.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SCOPE_WORKER = "worker"
_PEER_TIMEOUT = 5.0


def call_id() -> str:
    """Returns: a fresh UniqueId for a call the gateway makes ("gw-" + 32 hex digits, 35
    characters: within OCPP's 36)."""
    return "gw-" + secrets.token_hex(16)


def peer_socket(peer_dir: str, worker: int) -> str:
    """Args:
        peer_dir: the supervisor's directory of worker sockets.
        worker: a worker id.

    Returns:
        The path of that worker's admin socket.
    """
    return os.path.join(peer_dir, f"{worker}.sock")


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


class AdminLink:
    """The link under `Connection.links[ADMIN_LINK]`: the relay sends it the charge point's
    answers to the gateway's own calls (found by UniqueId), and it wakes the waiting request.
    Nothing is ever read from it.

    Args:
        version: the connection's OCPP version.
    """

    def __init__(self, version: str) -> None:
        self.version = version
        self.waiting: dict[str, asyncio.Future[bytes]] = {}

    async def send(self, frame: bytes) -> None:
        """Take an answer (a CALLRESULT, CALLERROR or CALLRESULTERROR, or the core's substitute).

        Args:
            frame: the frame's bytes.
        """
        try:
            unique_id = orjson.loads(frame)[1]
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
            return
        waiter = self.waiting.pop(unique_id, None) if isinstance(unique_id, str) else None
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    async def recv(self) -> bytes | None:
        """Returns: None (nothing comes from this link)."""
        return None

    async def close(self) -> None:
        """Fail every waiting request (the connection ended)."""
        for waiter in self.waiting.values():
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("charge point disconnected"))
        self.waiting.clear()


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
        the BootNotification, null until one was forwarded), worker, pending_calls and the
        frames each way so far.
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
        token = runtime.config.admin.token
        self._token = token.encode() if token else None

    # -- authorisation and peers -----------------------------------------------------------

    def _authorised(self, request: web.Request) -> web.Response | None:
        """None when the request carries the token; else the refusal (404 when the API is off)."""
        if self._token is None:
            raise web.HTTPNotFound()
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return None
        log.info(
            "admin request refused",
            extra={"remote": request.remote, "path": request.path, "reason": "bad_token"},
        )
        return web.Response(
            body=orjson.dumps({"error": "missing or wrong bearer token"}),
            status=401,
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="ocpp-gateway-admin"'},
        )

    def _peers(self, request: web.Request) -> list[str]:
        """The other workers' sockets, unless the request asks for this worker only."""
        if self._peer_dir is None or request.query.get("scope") == _SCOPE_WORKER:
            return []
        own = peer_socket(self._peer_dir, self._runtime.worker)
        try:
            names = sorted(os.listdir(self._peer_dir))
        except OSError:
            return []
        paths = (os.path.join(self._peer_dir, name) for name in names if name.endswith(".sock"))
        return [path for path in paths if path != own]

    async def _ask(
        self, path: str, request: web.Request, method: str, url: str, body: bytes | None
    ) -> tuple[int, Any] | None:
        """Send the request to the worker on socket `path`; None when it cannot be reached."""
        headers = {"Authorization": request.headers.get("Authorization", "")}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            connector = aiohttp.UnixConnector(path=path)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.request(
                    method,
                    f"http://worker{url}",
                    params={"scope": _SCOPE_WORKER},
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
        answers = await asyncio.gather(
            *(self._ask(p, request, "GET", "/charge-points", None) for p in peers)
        )
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
        does; 404 when none does."""
        peers = self._peers(request)
        answers = await asyncio.gather(
            *(self._ask(p, request, method, request.path, body) for p in peers)
        )
        for answer in answers:
            if answer is not None and answer[0] != 404:
                return _json(answer[1], answer[0])
        return _error(404, "charge point not connected", id=charge_point_id)

    async def call(self, request: web.Request) -> web.Response:
        refused = self._authorised(request)
        if refused is not None:
            return refused
        charge_point_id = request.match_info["charge_point_id"]
        body = await request.read()
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
        runtime = self._runtime
        version = conn.version
        schemas = runtime.schemas[version]
        directions = dict(schemas.actions())
        if directions.get(action) not in ("csms_to_cp", "both"):
            kind = "not_implemented" if action not in directions else "not_supported"
            code = _core.error_code_for(version, kind)
            detail = f"{action} is not a call the CSMS makes in {version}"
            return _error(400, "invalid call", error_code=code, detail=detail)
        body = orjson.dumps(payload)
        violation = schemas.validate(action, False, body)
        if violation is not None:
            return _error(400, "invalid call", error_code=violation[0], detail=violation[1])
        unique_id = call_id()
        frame = orjson.dumps([2, unique_id, action, payload])
        verdict = conn.session.from_csms(frame, monotonic())
        if not verdict.forward:
            return _error(
                400, "invalid call", error_code=verdict.error_code, detail=verdict.error_detail
            )
        found = conn.links.get(ADMIN_LINK)
        link = found if isinstance(found, AdminLink) else AdminLink(conn.version)
        conn.links[ADMIN_LINK] = link
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        link.waiting[unique_id] = waiter
        # The relay pops this entry when the answer comes, and hands it to the admin link;
        # the connection's timer drops it with the pending call when it expires.
        conn.call_origin[unique_id] = ADMIN_LINK
        log.info(
            "admin call",
            extra={"charge_point_id": conn.charge_point_id, "action": action, "id": unique_id},
        )
        try:
            await conn.sender.send(frame)
            async with asyncio.timeout(runtime.config.call_timeout):
                answer = await waiter
        except TimeoutError:
            link.waiting.pop(unique_id, None)
            return _error(504, "the charge point did not answer", unique_id=unique_id)
        except (ConnectionError, RuntimeError):
            link.waiting.pop(unique_id, None)
            return _error(502, "the charge point disconnected", unique_id=unique_id)
        return self._answer(schemas, action, unique_id, answer)

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
    return app


async def remove_stale(path: str) -> None:
    """Remove a socket file left by a worker that crashed (a new worker takes its slot).

    Args:
        path: the socket path.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
