"""How the parts of the admin API reach each other, and the workers (`--workers`) each other's.

The worker sockets, the URLs one worker asks another for, and `AdminAccess`: what the capture
endpoints and the console use of the admin API.

A request relayed to another worker carries `?scope=worker`, so that worker answers for itself
alone and never relays it on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from aiohttp import web
from yarl import URL

if TYPE_CHECKING:
    from ocpp_gateway.connection import Connection
    from ocpp_gateway.registry import Registry

__all__ = ["SCOPE_WORKER", "AdminAccess", "peer_socket", "peer_url"]

#: The value of the `scope` query parameter on a request one worker relays to another.
SCOPE_WORKER = "worker"


def peer_socket(peer_dir: str, worker: int) -> str:
    """Args:
        peer_dir: the supervisor's directory of worker sockets.
        worker: a worker id.

    Returns:
        The path of that worker's admin socket.
    """
    return os.path.join(peer_dir, f"{worker}.sock")


def peer_url(
    charge_point_id: str | None, resource: str = "", query: Mapping[str, str] | None = None
) -> URL:
    """The path a worker asks another worker's socket for (`?scope=worker`).

    Args:
        charge_point_id: the charge point, or None for the listing.
        resource: a resource under the charge point ("calls", "capture", "trace", "tail"),
            or "" for its record.
        query: more query parameters to pass along (the client's filters).

    Returns:
        The URL, with the id percent-encoded once as one path segment (every character but
        letters, digits, `-`, `_` and `~`; dots too, so `.` and `..` stay ids), built encoded
        so that nothing normalises it.
    """
    path = "/charge-points"
    if charge_point_id is not None:
        path += "/" + quote(charge_point_id, safe="").replace(".", "%2E")
        if resource:
            path += "/" + resource
    url = URL.build(scheme="http", host="worker", path=path, encoded=True)
    return url.with_query({**(query or {}), "scope": SCOPE_WORKER})


class AdminAccess(Protocol):
    """What the capture endpoints and the console use of the admin API (`admin._Api`): the
    token check, the other workers' sockets, a JSON request to one of them, and this process's
    connections."""

    @property
    def registry(self) -> Registry[Connection]: ...

    def _authorised(self, request: web.Request) -> web.Response | None: ...

    def _peers(self, request: web.Request) -> list[str]: ...

    async def _ask(
        self, path: str, request: web.Request, method: str, url: URL, body: bytes | None
    ) -> tuple[int, Any] | None: ...
