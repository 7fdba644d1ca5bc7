"""Second backends at work: the process's `Fanout` builds them, attaches their links, cuts over.

The `Fanout` holds the configured second backends (`backend.Backend`), starts one `side.SideLink`
per (charge point, backend that serves it) when a charge point is relayed, runs the timer that
expires a candidate's comparisons and flushes the stores, and swaps the primary with a candidate
(`cutover`). What a link does with the copies, answers and commands is in `side`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any

from ocpp_gateway.capture.redact import Redactor
from ocpp_gateway.config import BackendConfig, GatewayConfig
from ocpp_gateway.fanout.backend import Backend, ChargePoint
from ocpp_gateway.fanout.rules import serves
from ocpp_gateway.fanout.side import SideLink
from ocpp_gateway.fanout.tap import NatsTap
from ocpp_gateway.metrics import Metrics
from ocpp_gateway.transports import Link, Transport, build_transports

__all__ = ["Fanout"]

log = logging.getLogger("ocpp_gateway.fanout")


class Fanout:
    """The second backends of a process, and their live links.

    Args:
        backends: the second backends.
        call_timeout: seconds a call may wait for its answer (`GatewayConfig.call_timeout`).
        redactor: hides secrets in the disagreement samples.
    """

    def __init__(
        self,
        backends: list[Backend],
        call_timeout: float,
        redactor: Redactor,
        primary: Backend | None = None,
    ) -> None:
        self.backends = backends
        self.call_timeout = call_timeout
        self.redactor = redactor
        self.links: set[SideLink] = set()
        self.primary = primary
        self.taps: list[NatsTap] = []  # observers on a broker (`tap`)
        self.primary_label = "upstream"  # the configured primary's name
        # Set by the relay: switches one charge point's primary link to a candidate's link
        # when it is quiet (`fanout.wiring.switch_primary`); True when done.
        self.switcher: Callable[[SideLink], bool] | None = None

    @property
    def primary_name(self) -> str:
        """The name of the backend that is primary now ("upstream" for `[upstream]`)."""
        return self.primary.name if self.primary is not None else self.primary_label

    @classmethod
    def build(
        cls, config: GatewayConfig, metrics: Metrics, default: Transport | None = None
    ) -> Fanout | None:
        """The second backends of a configuration.

        Args:
            config: the configuration (its `[backends]` that are not the primary).
            metrics: the process's metrics.
            default: the primary's transport; with a candidate and a WebSocket primary, the
                primary becomes a `Backend` too, so that a cutover can swap the two.

        Returns:
            The fanout, or None when there is no second backend.
        """
        found = config.secondary_backends()
        if not found:
            return None
        second = {name: b for name, b in found.items() if b.type == "websocket"}
        taps = [NatsTap(name, b, metrics) for name, b in found.items() if b.type == "nats"]
        options: dict[str, Any] = {}
        for name, backend in second.items():
            options[name] = backend.as_upstream()
        transports = build_transports(
            {name: _websocket_options(up) for name, up in options.items()},
            config.security.max_message_bytes,
        )
        backends = [
            Backend(name, backend, transports[name], metrics) for name, backend in second.items()
        ]
        cap = config.capture
        redactor = Redactor(cap.secret_names, True, cap.hash_id_tags, cap.id_tag_salt)
        primary = _primary_backend(config, metrics, default, backends)
        fanout = cls(backends, config.call_timeout, redactor, primary)
        fanout.taps = taps
        configured = config.primary()
        if configured is not None:
            fanout.primary_label = configured[0]
        return fanout

    def cutover(self, name: str) -> Transport:
        """Make the candidate `name` the primary, and the primary a candidate in its place.

        New charge points are relayed to the new primary at once; each connected one switches
        its links when it is quiet (no call pending either way, the candidate's copies all
        delivered and answered), at a run of `tick`.

        Args:
            name: a candidate's name (the former primary, after a first cutover).

        Returns:
            The new primary's transport (the process's default transport from now on).

        Raises:
            ValueError: no such candidate, or the primary cannot be swapped (not WebSocket).
        """
        old = self.primary
        target = next((b for b in self.backends if b.name == name), None)
        if old is None:
            raise ValueError("cutover needs a candidate and a WebSocket primary")
        if target is None or target.role != "candidate":
            raise ValueError(f"{name!r} is not a candidate backend")
        if target.store is not None and old.store is None:
            old.store = target.store
        target.set_role("primary")
        old.set_role("candidate")
        self.backends = [old if b is target else b for b in self.backends]
        self.primary = target
        log.warning("cutover", extra={"backend": name, "previous": old.name})
        return target.transport

    def backend(self, name: str) -> Backend | None:
        """Returns: the backend named `name` (the primary included), or None."""
        if self.primary is not None and self.primary.name == name:
            return self.primary
        return next((b for b in self.backends if b.name == name), None)

    def serving(self, charge_point_id: str) -> list[str]:
        """Args:
            charge_point_id: a charge point.

        Returns:
            The names of the second backends (broker observers included) whose
            `charge_points` serve it.
        """
        named = [(b.name, b.config) for b in self.backends] + [
            (t.name, t.config) for t in self.taps
        ]
        return [name for name, c in named if serves(c.charge_points, charge_point_id)]

    def attach(
        self, conn: ChargePoint, chosen: Collection[str] | None = None
    ) -> tuple[SideLink, ...]:
        """Start the links of a newly relayed charge point to the backends that serve it.

        Args:
            conn: the connection (its `readers` get the links' tasks, cancelled when it ends).
            chosen: the names the plugins kept (`Chain.second_backends`); None: all that serve.

        Returns:
            The links.
        """
        links = tuple(
            SideLink(self, backend, conn)
            for backend in self.backends
            if serves(backend.config.charge_points, conn.charge_point_id)
            and (chosen is None or backend.name in chosen)
        )
        for link in links:
            self.links.add(link)
            link.task = asyncio.create_task(link.run())
            conn.readers.append(link.task)
        return links

    def taps_for(
        self, charge_point_id: str, chosen: Collection[str] | None = None
    ) -> tuple[NatsTap, ...]:
        """Args:
            charge_point_id: a charge point.
            chosen: the names the plugins kept; None: all that serve.

        Returns:
            The broker observers that serve it.
        """
        return tuple(
            t
            for t in self.taps
            if serves(t.config.charge_points, charge_point_id)
            and (chosen is None or t.name in chosen)
        )

    def tick(self, now: float) -> None:
        """The process timer: candidates' unanswered comparisons expire; stores are flushed.

        Args:
            now: `time.monotonic()`.
        """
        primary = self.primary
        switcher = self.switcher
        for link in list(self.links):
            if link.pending:
                link.expire(now - self.call_timeout)
            if link.backend is primary and switcher is not None:
                switcher(link)  # a cutover not done yet on this charge point
        for backend in self.backends:
            if backend.store is not None:
                backend.store.flush()

    def report(self) -> dict[str, Any]:
        """Returns: each candidate's report by name (see `store.read_report`)."""
        return {b.name: b.store.report() for b in self.backends if b.store is not None}

    async def close(self) -> None:
        """Close the second backends' transports and the stores; idempotent."""
        for backend in self.backends:
            if backend.role != "primary":
                await backend.transport.close()
            if backend.store is not None:
                backend.store.close()
        if self.primary is not None and self.primary.store is not None:
            self.primary.store.close()
        for tap in self.taps:
            await tap.close()

    def adopt(self, conn: ChargePoint, backend: Backend, link: Link) -> SideLink:
        """The former primary's open link of a charge point, kept as a candidate's link.

        Args:
            conn: the charge point's connection.
            backend: the former primary.
            link: its open link (its pump ended).

        Returns:
            The new side link, running.
        """
        side = SideLink(self, backend, conn, link)
        self.links.add(side)
        side.task = asyncio.create_task(side.run())
        conn.readers.append(side.task)
        return side


def _primary_backend(
    config: GatewayConfig, metrics: Metrics, default: Transport | None, second: list[Backend]
) -> Backend | None:
    """The primary as a `Backend`, when a cutover could swap it with a candidate."""
    candidate = next((b for b in second if b.role == "candidate"), None)
    if default is None or candidate is None:
        return None
    found = config.primary()
    if found is None:
        if not config.upstream.url or config.upstream.type != "websocket":
            return None
        name, settings = "upstream", BackendConfig(role="primary", url=config.upstream.url)
    else:
        name, settings = found
        if settings.type != "websocket":
            return None
    primary = Backend(name, settings, default, metrics)
    primary.store = candidate.store
    return primary


def _websocket_options(up: Any) -> Any:
    from ocpp_gateway.transports.websocket import WebSocketOptions

    return WebSocketOptions(
        up.url,
        username=up.username,
        password=up.password,
        connect_timeout=up.connect_timeout,
        compress=up.compress,
        client=up.client,
    )
