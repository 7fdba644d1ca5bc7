"""The admin API's capture endpoints: switch capture on and off, read a trace, tail it live.

Endpoints (behind the admin token, like the rest of `/charge-points`; registered by
`admin.build_admin_app` through `add_routes`, which also adds the web console of `console`):

- `POST /charge-points/{id}/capture`: switch capture on for a connected charge point, with an
  optional JSON body `{"frames": N, "seconds": S}` (no body: `[capture] default_frames` and
  `default_seconds`); answers the stream's status;
- `DELETE /charge-points/{id}/capture`: switch it off (what was captured stays readable);
- `GET /charge-points/{id}/capture`: the stream's status;
- `GET /charge-points/{id}/trace`: the captured records in memory as JSON lines
  (`application/x-ndjson`), oldest first. Filters: `since`, `until` (ISO 8601 or Unix
  seconds), `action`, `direction` (`cp-to-csms`, `csms-to-cp`), `message_id`. Pages: `limit`
  records (default 1000, at most 10,000) after the cursor `after` (a `meta.seq`); when more
  follow, the `X-Next-After` header holds the next cursor (and `Link` the next page's URL).
  `download=1` asks the browser to save it;
- `GET /charge-points/{id}/tail`: Server-Sent Events, one `record` event per record as it is
  captured (`backlog=N` first replays the last N captured frames); a comment line every 15 s
  keeps proxies from closing it.

With `--workers`, a worker that does not hold the charge point's stream asks the others over
their admin sockets (as `admin` does for the other endpoints) and streams the answer through.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web

from ocpp_gateway.admin_peers import SCOPE_WORKER, AdminAccess, peer_url
from ocpp_gateway.capture import CaptureStream
from ocpp_gateway.capture.record import Entry

if TYPE_CHECKING:
    from ocpp_gateway.runtime import Runtime

__all__ = ["AdminAccess", "TraceQuery", "add_routes", "parse_query"]

_SCOPE = "scope"
_WORKER = SCOPE_WORKER
_LIMIT = 1000
_MAX_LIMIT = 10_000
_KEEPALIVE = 15.0
_GONE_CHECK = 0.5  # seconds between checks that the tail's reader is still there
_DIRECTIONS = ("cp-to-csms", "csms-to-cp")
_NDJSON = "application/x-ndjson"
# Headers of another worker's answer passed on to the client.
_RELAYED = ("content-type", "cache-control", "x-next-after", "link", "content-disposition")


class TraceQuery:
    """The filters and page of a trace request.

    Attributes:
        since, until: Unix seconds (None: open).
        action, direction, message_id: equal to the record's (None: any).
        after: the cursor, a `meta.seq` (0: from the start).
        limit: records in the page.
    """

    __slots__ = ("action", "after", "direction", "limit", "message_id", "since", "until")

    def __init__(self) -> None:
        self.since: float | None = None
        self.until: float | None = None
        self.action: str | None = None
        self.direction: str | None = None
        self.message_id: str | None = None
        self.after = 0
        self.limit = _LIMIT

    def page(
        self, stream: CaptureStream, build: Callable[[Iterable[Entry]], Iterator[dict[str, Any]]]
    ) -> tuple[list[dict[str, Any]], int | None]:
        """The page of records.

        Args:
            stream: the captured charge point.
            build: turns an iterable of entries into records (`Capture.records`).

        Returns:
            (records, the next cursor or None when this is the last page).
        """
        out: list[dict[str, Any]] = []
        last = None
        for entry in self._entries(list(stream.ring)):
            if len(out) >= self.limit:
                return out, last
            out.extend(record for record in build([entry]) if self._keeps(record))
            last = entry[0]
        return out, None

    def _entries(self, entries: list[Entry]) -> Iterator[Entry]:
        for entry in entries:
            seq, moment = entry[0], entry[1]
            if seq <= self.after:
                continue
            if self.since is not None and moment < self.since:
                continue
            if self.until is not None and moment > self.until:
                continue
            yield entry

    def _keeps(self, record: dict[str, Any]) -> bool:
        return (
            (self.action is None or record.get("action") == self.action)
            and (self.direction is None or record["direction"] == self.direction)
            and (self.message_id is None or record.get("messageId") == self.message_id)
        )


def _moment(text: str) -> float:
    """Unix seconds from "1765000000.5" or ISO 8601 ("2026-12-07T08:00:00Z")."""
    try:
        value = float(text)
    except ValueError:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment.timestamp()
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def parse_query(query: Any) -> TraceQuery | str:
    """Read a trace request's filters.

    Args:
        query: the request's query (a mapping of strings).

    Returns:
        The query, or the message of a 400 answer.
    """
    found = TraceQuery()
    try:
        if "since" in query:
            found.since = _moment(query["since"])
        if "until" in query:
            found.until = _moment(query["until"])
    except ValueError:
        return "since and until are ISO 8601 times or Unix seconds"
    found.action = query.get("action") or None
    found.message_id = query.get("message_id") or None
    direction = query.get("direction") or None
    if direction is not None and direction not in _DIRECTIONS:
        return "direction is cp-to-csms or csms-to-cp"
    found.direction = direction
    try:
        found.after = int(query.get("after", "0"))
        found.limit = int(query.get("limit", str(_LIMIT)))
    except ValueError:
        return "after and limit are integers"
    if not 1 <= found.limit <= _MAX_LIMIT or found.after < 0:
        return f"limit is 1 to {_MAX_LIMIT}, after is not negative"
    return found


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


class _CaptureApi:
    """The capture handlers of one runtime."""

    def __init__(self, runtime: Runtime, access: AdminAccess) -> None:
        self._runtime = runtime
        self._access = access

    # -- switch ------------------------------------------------------------------------------

    async def switch_on(self, request: web.Request) -> web.StreamResponse:
        refused = self._access._authorised(request)
        if refused is not None:
            return refused
        body = await request.read()
        cfg = self._runtime.config.capture
        frames: int | None = cfg.default_frames
        seconds: float | None = cfg.default_seconds
        if body.strip():
            try:
                asked = orjson.loads(body)
            except orjson.JSONDecodeError:
                return _json({"error": "the body must be JSON: {frames, seconds}"}, 400)
            if not isinstance(asked, dict):
                return _json({"error": "the body must be a JSON object"}, 400)
            frames, seconds = asked.get("frames", frames), asked.get("seconds", seconds)
            if not (_positive(frames, int) and _positive(seconds, float)):
                return _json({"error": "frames and seconds are positive numbers or null"}, 400)
        conn = self._access.registry.holder(request.match_info["charge_point_id"])
        if conn is None:
            return await self._elsewhere(request, body) or _missing(request)
        stream = self._runtime.capture.start(conn, frames, seconds)
        return _json(stream.status())

    async def switch_off(self, request: web.Request) -> web.StreamResponse:
        found = await self._resolve(request)
        if isinstance(found, CaptureStream):
            found.stop()
            return _json(found.status())
        return found

    async def status(self, request: web.Request) -> web.StreamResponse:
        found = await self._resolve(request)
        return _json(found.status()) if isinstance(found, CaptureStream) else found

    # -- read --------------------------------------------------------------------------------

    async def trace(self, request: web.Request) -> web.StreamResponse:
        query = parse_query(request.query)
        if isinstance(query, str):
            refused = self._access._authorised(request)
            return refused if refused is not None else _json({"error": query}, 400)
        stream = await self._resolve(request)
        if not isinstance(stream, CaptureStream):
            return stream
        found, cursor = query.page(stream, self._runtime.capture.records)
        body = b"".join(orjson.dumps(record) + b"\n" for record in found)
        headers = {}
        if cursor is not None:
            headers["X-Next-After"] = str(cursor)
            params = {k: v for k, v in request.query.items() if k not in ("after", _SCOPE)}
            params["after"] = str(cursor)
            headers["Link"] = f'<{request.path}?{urlencode(params)}>; rel="next"'
        if request.query.get("download") == "1":
            name = "".join(c if c.isalnum() or c in "-_" else "_" for c in stream.charge_point_id)
            headers["Content-Disposition"] = f'attachment; filename="{name}.trace.jsonl"'
        return web.Response(body=body, content_type=_NDJSON, headers=headers)

    async def tail(self, request: web.Request) -> web.StreamResponse:
        try:
            asked = int(request.query.get("backlog", "0"))
        except ValueError:
            refused = self._access._authorised(request)
            return (
                refused if refused is not None else _json({"error": "backlog is an integer"}, 400)
            )
        stream = await self._resolve(request)
        if not isinstance(stream, CaptureStream):
            return stream
        charge_point_id = stream.charge_point_id
        backlog = max(0, min(asked, len(stream.ring)))
        answer = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        queue = stream.tail()
        build = self._runtime.capture.records
        try:
            await answer.prepare(request)
            first = list(stream.ring)[len(stream.ring) - backlog :] if backlog else []
            await answer.write(b": capture of " + charge_point_id.encode() + b"\n\n")
            for record in build(first):
                await answer.write(_event(record))
            quiet = 0.0
            while True:
                try:
                    entry = await asyncio.wait_for(queue.get(), _GONE_CHECK)
                except TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break  # the reader left (aiohttp does not cancel the handler)
                    quiet += _GONE_CHECK
                    if quiet >= _KEEPALIVE:
                        quiet = 0.0
                        await answer.write(b": keep-alive\n\n")
                    continue
                quiet = 0.0
                for record in build([entry]):
                    await answer.write(_event(record))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            stream.untail(queue)  # a restarted capture shares its tails with the old stream
        return answer

    # -- other workers -------------------------------------------------------------------------

    async def _resolve(self, request: web.Request) -> CaptureStream | web.StreamResponse:
        """The charge point's stream, or the answer to give instead: the refusal without the
        token, the answer of the worker holding its connection, or 404. A stream left here by
        an earlier connection serves only when no other worker holds the charge point."""
        refused = self._access._authorised(request)
        if refused is not None:
            return refused
        charge_point_id = request.match_info["charge_point_id"]
        stream = self._runtime.capture.get(charge_point_id)
        if stream is not None and self._access.registry.holder(charge_point_id) is not None:
            return stream
        answer = await self._elsewhere(request, None)
        if answer is not None:
            return answer
        return stream if stream is not None else _missing(request)

    async def _elsewhere(
        self, request: web.Request, body: bytes | None
    ) -> web.StreamResponse | None:
        """Ask the other workers, one after the other, and stream the first answer that is not
        a 404 through; None when none holds the charge point (or this is a worker's request)."""
        headers = {"Authorization": request.headers.get("Authorization", "")}
        if body:
            headers["Content-Type"] = "application/json"
        # The id encoded once, never the decoded path re-joined (admin_peers.peer_url).
        resource = request.match_info.route.resource
        suffix = resource.canonical.rsplit("/", 1)[1] if resource is not None else ""
        url = peer_url(request.match_info["charge_point_id"], suffix, request.query)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=5.0, sock_read=None if request.path.endswith("/tail") else 30
        )
        for path in self._access._peers(request):
            try:
                async with (
                    aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as session,
                    session.request(
                        request.method,
                        url,
                        data=body,
                        headers=headers,
                        timeout=timeout,
                    ) as found,
                ):
                    if found.status == 404:
                        continue
                    relayed = {k: v for k, v in found.headers.items() if k.lower() in _RELAYED}
                    answer = web.StreamResponse(status=found.status, headers=relayed)
                    await answer.prepare(request)
                    # Once the answer has begun, a broken stream (either side) ends it here.
                    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                        await _pipe(found, answer, request)
                    return answer
            except (aiohttp.ClientError, OSError, TimeoutError):
                continue  # that worker cannot be reached: ask the next one
        return None


async def _pipe(
    found: aiohttp.ClientResponse, answer: web.StreamResponse, request: web.Request
) -> None:
    """Copy another worker's answer to the client until it ends or the client leaves (checked
    every `_GONE_CHECK` seconds, so a live tail's worker learns it soon)."""
    while True:
        try:
            chunk = await asyncio.wait_for(found.content.readany(), _GONE_CHECK)
        except TimeoutError:
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            continue
        if not chunk:
            await answer.write_eof()
            return
        await answer.write(chunk)


def _missing(request: web.Request) -> web.Response:
    charge_point_id = request.match_info["charge_point_id"]
    return _json(
        {"error": "charge point not captured or not connected", "id": charge_point_id}, 404
    )


def _positive(value: object, kind: type) -> bool:
    """None, or a positive finite number of `kind` (an int is a float; a bool is neither)."""
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, int | kind):
        return False
    return 0 < value < 1e9  # type: ignore[operator]


def _event(record: dict[str, Any]) -> bytes:
    return b"event: record\nid: %d\ndata: %b\n\n" % (record["meta"]["seq"], orjson.dumps(record))


def add_routes(app: web.Application, runtime: Runtime, access: AdminAccess) -> None:
    """Add the capture endpoints to the admin application.

    Args:
        app: the admin application.
        runtime: the process.
        access: the admin API (token check, the other workers).
    """
    api = _CaptureApi(runtime, access)
    base = "/charge-points/{charge_point_id}"
    app.router.add_post(f"{base}/capture", api.switch_on)
    app.router.add_delete(f"{base}/capture", api.switch_off)
    app.router.add_get(f"{base}/capture", api.status)
    app.router.add_get(f"{base}/trace", api.trace)
    app.router.add_get(f"{base}/tail", api.tail)
