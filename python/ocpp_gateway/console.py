"""The web console on the admin listener: one HTML page and a little JavaScript, no build step.

- `GET /console`: the page (and `/console/console.js`, `/console/console.css`). These hold no
  data and need no token; the page asks for the admin token (or takes it from the URL fragment
  `#token=...`, which never reaches the server) and keeps it in the browser tab only;
- `GET /console/api/overview` (admin token): what the page shows beside the charge point list of
  `GET /charge-points`: rejections and capture state per charge point, violations per model,
  the backends' state, of every worker.

The page reads `GET /charge-points` (list), `GET /charge-points/{id}/tail` (live frames, read
from a streamed fetch so that the token travels in a header), `POST`/`DELETE
/charge-points/{id}/capture` and `GET /charge-points/{id}/trace?download=1`.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from yarl import URL

from ocpp_gateway.admin_peers import SCOPE_WORKER, AdminAccess

if TYPE_CHECKING:
    from ocpp_gateway.connection import Connection
    from ocpp_gateway.registry import Registry
    from ocpp_gateway.runtime import Runtime

__all__ = ["add_console_routes", "overview"]

# The overview of one worker, as another worker asks for it.
_OVERVIEW_ON_WORKER = URL.build(
    scheme="http", host="worker", path="/console/api/overview", query=f"scope={SCOPE_WORKER}"
)
_STATIC = {
    "console.js": "application/javascript",
    "console.css": "text/css",
    "index.html": "text/html",
}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


def overview(runtime: Runtime, registry: Registry[Connection]) -> dict[str, Any]:
    """This worker's part of the console's overview.

    Args:
        runtime: the process.
        registry: its connections.

    Returns:
        charge_points (id -> rejections), capture (id -> stream status), violations (one per
        model, action and rule, with its count), violation_log (whether it is kept:
        `validation.violation_log`), backends (name, kind, ready).
    """
    points = {
        conn.charge_point_id: {"rejections": conn.rejections}
        for conn in list(registry.live.values())
    }
    capture = {cid: stream.status() for cid, stream in runtime.capture.streams.items()}
    violations: list[dict[str, Any]] = []
    if runtime.violations is not None:
        for entry in runtime.violations.sorted_entries():
            violations.append(
                {
                    "model": entry.model,
                    "firmware": entry.firmware,
                    "version": entry.version,
                    "action": entry.action,
                    "path": entry.path,
                    "keyword": entry.keyword,
                    "error_code": entry.error_code,
                    "count": entry.count,
                }
            )
    backends = []
    for name, transport in runtime.transports.items():
        ready = getattr(transport, "ready", None)
        backends.append(
            {
                "worker": runtime.worker,
                "name": name,
                "kind": type(transport).__name__,
                "ready": bool(ready()) if callable(ready) else True,
            }
        )
    return {
        "charge_points": points,
        "capture": capture,
        "violations": violations,
        "violation_log": runtime.violations is not None,
        "backends": backends,
    }


class _Console:
    def __init__(self, runtime: Runtime, access: AdminAccess) -> None:
        self._runtime = runtime
        self._access = access

    async def page(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/console":
            raise web.HTTPFound("/console/")
        name = request.match_info.get("name") or "index.html"
        kind = _STATIC.get(name)
        if kind is None:
            raise web.HTTPNotFound()
        body = resources.files("ocpp_gateway").joinpath("console_static", name).read_bytes()
        headers = {
            "Content-Security-Policy": _CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
        }
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=headers)

    async def overview(self, request: web.Request) -> web.StreamResponse:
        refused = self._access._authorised(request)
        if refused is not None:
            return refused
        found = overview(self._runtime, self._access.registry)
        peers = self._access._peers(request)
        answers = await asyncio.gather(
            *(self._access._ask(p, request, "GET", _OVERVIEW_ON_WORKER, None) for p in peers)
        )
        for answer in answers:
            if answer is None or answer[0] != 200 or not isinstance(answer[1], dict):
                continue
            other = answer[1]
            for key in ("charge_points", "capture"):
                found[key].update(other.get(key) or {})
            for key in ("violations", "backends"):
                found[key].extend(other.get(key) or ())
            found["violation_log"] = found["violation_log"] or bool(other.get("violation_log"))
        found["violations"].sort(key=lambda v: (-int(v.get("count", 0)), str(v.get("model"))))
        return web.Response(body=orjson.dumps(found), content_type="application/json")


def add_console_routes(app: web.Application, runtime: Runtime, access: AdminAccess) -> None:
    """Add the console's page, files and overview to the admin application.

    Args:
        app: the admin application.
        runtime: the process.
        access: the admin API (token check, the other workers).
    """
    console = _Console(runtime, access)
    app.router.add_get("/console", console.page)
    app.router.add_get("/console/", console.page)
    app.router.add_get("/console/api/overview", console.overview)
    app.router.add_get("/console/{name}", console.page)
