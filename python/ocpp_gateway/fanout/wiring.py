"""The relay's slow paths for second backends: attach, copy to observers, switch the primary.

They attach a charge point's links, copy frames to broker observers, switch a quiet charge
point over to a new primary, and map transaction ids after a cutover.

The relay (`relay.run`) calls these off the common frame's way: `attach_second_backends` once
per connection, `tap` only when the charge point has broker observers, `after_cutover` only after
its primary changed. The relay's `start_backend_pump` is handed in (`StartPump`), so that this
module does not import the relay.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from ocpp_gateway import _core
from ocpp_gateway.fanout.side import SideLink, map_transaction_id
from ocpp_gateway.transports import DEFAULT_TRANSPORT, Link, WakingLink

if TYPE_CHECKING:
    from ocpp_gateway.connection import Connection
    from ocpp_gateway.runtime import Runtime

__all__ = ["StartPump", "after_cutover", "attach_second_backends", "switch_primary", "tap"]

log = logging.getLogger("ocpp_gateway.relay")

#: The relay's `start_backend_pump(runtime, conn, name, link)`.
StartPump = Callable[["Runtime", "Connection", str, Link], None]


def attach_second_backends(
    runtime: Runtime, conn: Connection, start_pump: StartPump
) -> tuple[SideLink, ...]:
    """Start the charge point's links to the second backends that serve it (none without).

    Args:
        runtime: the process.
        conn: the newly relayed connection, its primary link's pump started just before.
        start_pump: the relay's `start_backend_pump` (for a cutover's new primary link).

    Returns:
        The charge point's side links (also in `conn.sides`).
    """
    fanout = runtime.fanout
    if fanout is None:
        return ()
    if fanout.switcher is None:
        fanout.switcher = functools.partial(switch_primary, runtime, start_pump)
    if conn.readers and not isinstance(conn.links[DEFAULT_TRANSPORT], WakingLink):
        conn.primary_pump = conn.readers[-1]  # started just before
    conn.primary = fanout.primary_name
    chosen = None
    if runtime.chain is not None:
        # A plugin may narrow them for this charge point (`Chain.second_backends`).
        chosen = runtime.chain.second_backends(conn.info, fanout.serving(conn.charge_point_id))
    conn.taps = fanout.taps_for(conn.charge_point_id, chosen)
    sides = conn.sides = fanout.attach(conn, chosen)
    if any(side.backend.role == "controller" for side in sides):
        conn.call_link(with_primary=True)  # one call in flight, the primary's included
    conn.candidates = tuple(side for side in sides if side.backend.role == "candidate")
    return sides


def tap(
    conn: Connection,
    direction: str,
    sender: str,
    receiver: str,
    frame: bytes,
    message_type: int,
    verdict: _core.Verdict,
) -> None:
    """A forwarded frame for the charge point's observers on a broker (queued).

    Args:
        conn: the charge point's connection (its `taps`).
        direction: "cp_to_csms" or "csms_to_cp".
        sender: who sent the frame ("charge_point", a backend's name, "gateway").
        receiver: who receives it.
        frame: the frame.
        message_type: its MessageTypeId.
        verdict: the session's verdict on it (UniqueId and action).
    """
    for tap in conn.taps:
        tap.offer(
            conn.charge_point_id,
            conn.version,
            direction,
            sender,
            receiver,
            frame,
            message_type,
            verdict.unique_id,
            verdict.action,
        )


def switch_primary(runtime: Runtime, start_pump: StartPump, side: SideLink) -> bool:
    """Cut one charge point over to a new primary, if it is quiet now: the candidate's open
    link becomes the primary link (its pump started), the former primary's link a candidate's
    link, and the charge point socket stays as it is.

    Quiet: no call pending either way (so no answer is owed by or to the former primary), and
    the candidate has received and answered every copy. The 1.6 transactions begun before keep
    the former primary's ids at the charge point; the relay gives the new primary its own ids
    for them (`Connection.cutover`, `fanout.hub.map_transaction_id`).

    Args:
        runtime: the process.
        start_pump: the relay's `start_backend_pump`.
        side: the charge point's link to the backend that is primary now.

    Returns:
        True when the charge point was switched.
    """
    conn = cast("Connection", side.conn)
    fanout = runtime.fanout
    pump = conn.primary_pump
    if fanout is None or pump is None or conn.session.pending() or not side.quiet():
        return False
    former = fanout.backend(conn.primary)
    if former is None or conn.close_reason is not None:
        return False
    link = side.release()
    pump.cancel()  # the pump ends without closing the charge point (CancelledError)
    old_link = conn.links[DEFAULT_TRANSPORT]
    conn.links[DEFAULT_TRANSPORT] = link
    start_pump(runtime, conn, DEFAULT_TRANSPORT, link)
    conn.primary_pump = conn.readers[-1]
    adopted = fanout.adopt(conn, former, old_link)
    conn.sides = tuple(adopted if s is side else s for s in conn.sides)
    conn.candidates = tuple(s for s in conn.sides if s.backend.role == "candidate")
    conn.cutover, conn.primary = conn.primary, side.backend.name
    log.info(
        "charge point cut over",
        extra={
            "charge_point_id": conn.charge_point_id,
            "backend": conn.primary,
            "previous": conn.cutover,
        },
    )
    return True


def after_cutover(
    conn: Connection, frame: bytes, message_type: int, action: str | None
) -> tuple[Link, bytes]:
    """The primary link after a cutover, and the frame for it: a 1.6 MeterValues or
    StopTransaction of a transaction begun under the former primary gets the new primary's id
    for it.

    Args:
        conn: the charge point's connection (`conn.cutover` set).
        frame: what goes to the primary.
        message_type: its MessageTypeId.
        action: its action.

    Returns:
        The primary link now, and the frame to send on it.
    """
    link = conn.links[DEFAULT_TRANSPORT]
    if (
        message_type == 2
        and action in ("MeterValues", "StopTransaction")
        and conn.version == "ocpp1.6"
    ):
        backend = next((s.backend for s in conn.sides if s.backend.name == conn.cutover), None)
        if backend is not None and backend.store is not None and conn.cutover is not None:
            mapped = map_transaction_id(frame, backend.store, conn.cutover, conn.charge_point_id)
            if mapped is not None:
                return link, mapped
    return link, frame
