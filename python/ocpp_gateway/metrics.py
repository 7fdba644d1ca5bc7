"""Prometheus metrics of the gateway, on a registry of their own, with cached label children.

Every label value comes from a closed set: directions, message types, the actions the loaded
schemas know (anything else is counted as "unknown"), error codes of the OCPP-J tables, reasons
chosen by the code. Never a charge point id or a unique id.

Hot path: the per-frame metrics (messages, frame sizes, call durations) are accumulated in plain
Python counters and added to the prometheus_client collectors in bulk by `flush()`, which runs
before every scrape of the registry and from the server's once-a-second timer. A locked
prometheus_client update costs 1-2 µs (in multiprocess mode, a locked mmap write: more); a dict
increment a fifth of that. In multiprocess mode another worker may answer the scrape, so the
per-frame counts of the other workers are at most about one second old.

With several worker processes, `serve` sets `PROMETHEUS_MULTIPROC_DIR`; each worker then writes
its samples to files there and `/metrics` on any worker aggregates all of them.
"""

from __future__ import annotations

import os
from bisect import bisect_left
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
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SIZE_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 16384, 65536, 262144, 1048576)


class Metrics:
    """The gateway's collectors. One per process (or per in-process gateway in tests).

    Args:
        known_actions: every action name the loaded schemas define; other names are labelled
            "unknown" so that a peer cannot grow the label sets.
        multiprocess_dir: when set, collect from prometheus_client's multiprocess files there.

    The `count_*` methods are the hot path: they look label children up in plain dicts.
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
        self._message_children: dict[tuple[str, int, str | None], Any] = {}
        self._duration_children: dict[tuple[str, str | None], Any] = {}
        self._size_children: dict[str, Any] = {}
        self._pending_messages: dict[tuple[str, int, str | None], int] = {}
        self._duration_bounds = [*_DURATION_BUCKETS, float("inf")]
        self._size_bounds = [*_SIZE_BUCKETS, float("inf")]
        # key -> [count per bucket..., sum]
        self._pending_durations: dict[tuple[str, str | None], list[float]] = {}
        self._pending_sizes: dict[str, list[float]] = {}

    def action_label(self, action: str | None) -> str:
        """Args:
            action: an action name from a frame, or None.

        Returns:
            The action when the schemas know it, else "unknown".
        """
        return action if action is not None and action in self.known_actions else UNKNOWN

    def count_message(self, direction: str, message_type: int, action: str | None) -> None:
        """Count one relayed frame (hot path; added to the counter at the next flush).

        Args:
            direction: "cp_to_csms" or "csms_to_cp".
            message_type: the MessageTypeId.
            action: the action, or for a result the action of its call.
        """
        key = (direction, message_type, action)
        pending = self._pending_messages
        pending[key] = pending.get(key, 0) + 1

    def observe_duration(self, direction: str, action: str | None, seconds: float) -> None:
        """Record the time a call took to be answered (hot path).

        Args:
            direction: the direction of the call.
            action: the call's action.
            seconds: the duration.
        """
        key = (direction, action)
        slots = self._pending_durations.get(key)
        if slots is None:
            slots = self._pending_durations[key] = [0.0] * (len(self._duration_bounds) + 1)
        slots[bisect_left(self._duration_bounds, seconds)] += 1
        slots[-1] += seconds

    def observe_size(self, direction: str, size: int) -> None:
        """Record the size of a received frame (hot path).

        Args:
            direction: where the frame goes.
            size: its length in bytes.
        """
        slots = self._pending_sizes.get(direction)
        if slots is None:
            slots = self._pending_sizes[direction] = [0.0] * (len(self._size_bounds) + 1)
        slots[bisect_left(self._size_bounds, size)] += 1
        slots[-1] += size

    def flush(self) -> None:
        """Add the batched hot-path counts to the prometheus_client collectors."""
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

    def render(self) -> bytes:
        """Returns: the Prometheus text of every metric (of all workers in multiprocess mode)."""
        if self.multiprocess_dir:
            self.flush()
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
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
