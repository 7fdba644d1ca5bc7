"""Prometheus metrics of the gateway, on a registry of their own, with cached label children.

Every label value comes from a closed set: directions, message types, the actions the loaded
schemas know (anything else is counted as "unknown"), error codes of the OCPP-J tables, reasons
chosen by the code. Never a charge point id or a unique id.

Hot path: the per-frame metrics (messages, frame sizes, call durations) are counted by the
Rust Sessions themselves, in one `_core.Stats` per version (`new_stats`), so the relay makes no
metric call per frame. `flush()` drains those counters and adds them to the prometheus_client
collectors in bulk; it runs before every scrape of the registry and from the server's
once-a-second timer. (A locked prometheus_client update costs 1-2 µs, in multiprocess mode a
locked mmap write: more.) In multiprocess mode another worker may answer the scrape, so the
per-frame counts of the other workers are at most about one second old.

With several worker processes, `serve` sets `PROMETHEUS_MULTIPROC_DIR`; each worker then writes
its samples to files there and `/metrics` on any worker aggregates all of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ocpp_gateway import _core
from ocpp_gateway.about import versions

__all__ = ["CONTENT_TYPE", "MESSAGE_TYPE_NAMES", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MESSAGE_TYPE_NAMES = {
    2: "CALL",
    3: "CALLRESULT",
    4: "CALLERROR",
    5: "CALLRESULTERROR",
    6: "SEND",
}
UNKNOWN = "unknown"
# Call durations: log-spaced (1, 2.5, 5 per decade) from 0.1 ms, since a loopback or LAN round
# trip takes well under a millisecond, up to 60 s, the default call_timeout. Between two bounds
# histogram_quantile interpolates linearly, so a quantile is off by at most the 2.5x step.
_DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_SIZE_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536, 262144, 1048576)


class Metrics:
    """The gateway's collectors. One per process (or per in-process gateway in tests).

    Args:
        known_actions: every action name the loaded schemas define; other names are labelled
            "unknown" so that a peer cannot grow the label sets.
        multiprocess_dir: when set, collect from prometheus_client's multiprocess files there.

    `count_rejected` and the other counters are the slow path; per-frame counts come from the
    Sessions (`new_stats`) and are drained by `flush`.
    """

    def __init__(
        self, known_actions: Iterable[str] = (), multiprocess_dir: str | None = None
    ) -> None:
        self.known_actions = frozenset(known_actions)
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        # Registered first, so that every scrape of the registry flushes the batches first.
        reg.register(_FlushFirst(self))
        gauge_mode: Literal["livesum", "all"] = "livesum" if multiprocess_dir else "all"
        self.connected = Gauge(
            "ocpp_gateway_connected_charge_points",
            "Charge points connected now.",
            ["ocpp_version"],
            registry=reg,
            multiprocess_mode=gauge_mode,
        )
        # Always present (value 1), so that a target is known as a gateway even before any
        # charge point connects: the OcppGatewayDown alert finds gateways by it, whatever the
        # scrape job is called.
        self.build_info = Gauge(
            "ocpp_gateway_build_info",
            "Versions of this gateway (value 1): package, Rust core, ocpp schema package.",
            ["version", "core_version", "ocpp_package"],
            registry=reg,
            multiprocess_mode="max",
        )
        built = versions()
        self.build_info.labels(built["ocpp-gateway"], built["core"], built["ocpp"]).set(1)
        self.messages = Counter(
            "ocpp_gateway_messages",
            "Frames relayed, by direction, message type and action (results: the call's action).",
            ["direction", "message_type", "action"],
            registry=reg,
        )
        self.rejected = Counter(
            "ocpp_gateway_rejected_messages",
            "Frames refused by validation and answered by the gateway.",
            ["direction", "action", "error_code"],
            registry=reg,
        )
        self.call_duration = Histogram(
            "ocpp_gateway_call_duration_seconds",
            "From forwarding a CALL to its answer.",
            ["direction", "action"],
            registry=reg,
            buckets=_DURATION_BUCKETS,
        )
        self.handshakes_refused = Counter(
            "ocpp_gateway_handshakes_refused",
            "WebSocket handshakes refused or closed at once, by reason.",
            ["reason"],
            registry=reg,
        )
        self.upstream_connect_failures = Counter(
            "ocpp_gateway_upstream_connect_failures",
            "Backend links that could not be opened, by transport.",
            ["transport"],
            registry=reg,
        )
        self.pending_timed_out = Counter(
            "ocpp_gateway_pending_calls_timed_out",
            "Calls forgotten after call_timeout without an answer.",
            ["direction", "action"],
            registry=reg,
        )
        self.unmatched_results = Counter(
            "ocpp_gateway_unmatched_results",
            "CALLRESULT/CALLERROR frames that answered no pending call (dropped).",
            ["direction"],
            registry=reg,
        )
        self.frame_size = Histogram(
            "ocpp_gateway_frame_size_bytes",
            "Size of received frames.",
            ["direction"],
            registry=reg,
            buckets=_SIZE_BUCKETS,
        )
        self.observed_violations = Counter(
            "ocpp_gateway_observed_violations",
            "Payload violations forwarded anyway because the policy is observe.",
            ["direction", "action", "error_code"],
            registry=reg,
        )
        self.relaxed = Counter(
            "ocpp_gateway_relaxed",
            "Payloads the official schema rejects that a relaxation of the charge point model's "
            "let pass, by rule (the configured relax key).",
            ["version", "action", "rule"],
            registry=reg,
        )
        self.takeovers = Counter(
            "ocpp_gateway_takeovers",
            "Second connections with a live charge point id, by outcome.",
            ["outcome"],
            registry=reg,
        )
        self.auth_failures = Counter(
            "ocpp_gateway_auth_failures",
            "Failed handshake authentications, by reason.",
            ["reason"],
            registry=reg,
        )
        self.rate_limited = Counter(
            "ocpp_gateway_rate_limited",
            "Frames over the per-connection rate limit.",
            ["action"],
            registry=reg,
        )
        self.connections_closed = Counter(
            "ocpp_gateway_connections_closed",
            "Charge point connections closed, by reason.",
            ["reason"],
            registry=reg,
        )
        self.dropped = Counter(
            "ocpp_gateway_dropped_messages",
            "Frames dropped without an answer, by reason.",
            ["direction", "reason"],
            registry=reg,
        )
        self.admin_refused = Counter(
            "ocpp_gateway_admin_refused",
            "Requests and connections the admin listener refused, by reason.",
            ["reason"],
            registry=reg,
        )
        # Several backends per charge point (ocpp_gateway.fanout); `backend` is a configured
        # name, `role` one of controller/observer/candidate: closed label sets.
        self.backend_frames = Counter(
            "ocpp_gateway_backend_frames",
            "Frames to and from the second backends (not the primary), by direction.",
            ["backend", "role", "direction"],
            registry=reg,
        )
        self.backend_dropped = Counter(
            "ocpp_gateway_backend_dropped_frames",
            "Frames a second backend could not receive (its queue was full), oldest first.",
            ["backend", "role"],
            registry=reg,
        )
        self.backend_commands = Counter(
            "ocpp_gateway_backend_commands",
            "Calls from second backends to charge points, allowed or refused.",
            ["backend", "role", "outcome"],
            registry=reg,
        )
        self.backend_reconnects = Counter(
            "ocpp_gateway_backend_reconnects",
            "Links of second backends opened again after they were lost or refused.",
            ["backend", "role"],
            registry=reg,
        )
        self.candidate_answers = Counter(
            "ocpp_gateway_candidate_answers",
            "A candidate backend's answers compared with the primary's, by outcome.",
            ["backend", "action", "outcome"],
            registry=reg,
        )
        self._message_children: dict[tuple[str, int, str | None], Any] = {}
        self._duration_children: dict[tuple[str, str | None], Any] = {}
        self._size_children: dict[str, Any] = {}
        self._pending_messages: dict[tuple[str, int, str | None], int] = {}
        # key -> [count per bucket..., sum]
        self._pending_durations: dict[tuple[str, str | None], list[float]] = {}
        self._pending_sizes: dict[str, list[float]] = {}
        self._stats: list[_core.Stats] = []
        self._collectors: list[Any] = []

    def action_label(self, action: str | None) -> str:
        """Args:
            action: an action name from a frame, or None.

        Returns:
            The action when the schemas know it, else "unknown".
        """
        return action if action is not None and action in self.known_actions else UNKNOWN

    def new_stats(self, schemas: _core.SchemaSet) -> _core.Stats:
        """Frame counters for the Sessions of one version, drained by every `flush`.

        Args:
            schemas: the version's schemas.

        Returns:
            The counters to give to each `Session` of that version (`stats=`).
        """
        stats = _core.Stats(schemas, list(_DURATION_BUCKETS), [float(b) for b in _SIZE_BUCKETS])
        self._stats.append(stats)
        return stats

    def _drain_stats(self) -> None:
        messages = self._pending_messages
        durations = self._pending_durations
        sizes = self._pending_sizes
        for stats in self._stats:
            taken_messages, taken_durations, taken_sizes = stats.take()
            for direction, message_type, action, n in taken_messages:
                key = (direction, message_type, action)
                messages[key] = messages.get(key, 0) + n
            for direction, action, counts, total in taken_durations:
                _merge_slots(durations, (direction, action), counts, total)
            for direction, counts, total in taken_sizes:
                _merge_slots(sizes, direction, counts, total)

    def flush(self) -> None:
        """Add the batched hot-path counts to the prometheus_client collectors."""
        if self._stats:
            self._drain_stats()
        if self._pending_messages:
            pending, self._pending_messages = self._pending_messages, {}
            for key, count in pending.items():
                child = self._message_children.get(key)
                if child is None:
                    direction, message_type, action = key
                    child = self.messages.labels(
                        direction,
                        MESSAGE_TYPE_NAMES.get(message_type, UNKNOWN),
                        self.action_label(action),
                    )
                    if len(self._message_children) < 4096:
                        self._message_children[key] = child
                child.inc(count)
        if self._pending_durations:
            durations, self._pending_durations = self._pending_durations, {}
            for dkey, slots in durations.items():
                child = self._duration_children.get(dkey)
                if child is None:
                    child = self.call_duration.labels(dkey[0], self.action_label(dkey[1]))
                    if len(self._duration_children) < 4096:
                        self._duration_children[dkey] = child
                _add_to_histogram(child, slots)
        if self._pending_sizes:
            sizes, self._pending_sizes = self._pending_sizes, {}
            for direction, slots in sizes.items():
                child = self._size_children.get(direction)
                if child is None:
                    child = self._size_children[direction] = self.frame_size.labels(direction)
                _add_to_histogram(child, slots)

    def count_rejected(self, direction: str, action: str | None, error_code: str) -> None:
        """Count a frame refused by validation.

        Args:
            direction: the frame's direction.
            action: its action (or its call's), if known.
            error_code: the OCPP error code of the violation.
        """
        self.rejected.labels(direction, self.action_label(action), error_code).inc()

    def count_relaxed(self, version: str, action: str | None, rule: str) -> None:
        """Count a payload a model's relaxation let pass (`Verdict.relaxed` is set).

        Args:
            version: the session's OCPP version.
            action: the verdict's action.
            rule: `Verdict.relaxed`, a configured relax key (a bounded set).
        """
        self.relaxed.labels(version, self.action_label(action), rule).inc()

    def add_collector(self, collector: Any) -> None:
        """Export a collector read at scrape time (broker transports' counters). In
        multiprocess mode its values are this worker's own, not summed over workers."""
        self.registry.register(collector)
        self._collectors.append(collector)

    def render(self) -> bytes:
        """Returns: the Prometheus text of every metric (of all workers in multiprocess mode)."""
        if self.multiprocess_dir:
            self.flush()
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            for collector in self._collectors:
                registry.register(collector)
            return generate_latest(registry)
        return generate_latest(self.registry)

    @staticmethod
    def mark_process_dead(pid: int, directory: str | None = None) -> None:
        """Drop a finished worker's live gauges from the multiprocess files.

        Args:
            pid: the worker's process id.
            directory: the multiprocess directory; `PROMETHEUS_MULTIPROC_DIR` when None.
        """
        directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def _merge_slots(
    pending: dict[Any, list[float]], key: Any, counts: list[int], total: float
) -> None:
    """Add drained bucket counts (last bucket +Inf) and their sum to a pending slot list."""
    slots = pending.get(key)
    if slots is None:
        slots = pending[key] = [0.0] * (len(counts) + 1)
    for i, n in enumerate(counts):
        slots[i] += n
    slots[-1] += total


def _add_to_histogram(child: Any, slots: list[float]) -> None:
    """Add batched observations to a prometheus_client histogram child.

    prometheus_client has no bulk observe; its histogram keeps one value per bucket
    (non-cumulative) and a sum, which `observe` updates one at a time. This adds to the same
    values, so both the in-process and the multiprocess (mmap) storage stay consistent.
    """
    buckets = child._buckets
    for index, count in enumerate(slots[:-1]):
        if count:
            buckets[index].inc(count)
    child._sum.inc(slots[-1])


class _FlushFirst:
    """A collector that exports nothing and flushes the hot-path batches when collected."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        self._metrics.flush()
        return iter(())
