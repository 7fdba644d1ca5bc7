"""Broker transport metrics: the counters a transport keeps, exported at scrape time.

`BrokerStats` is written on the hot path (plain attributes, no locks, no labels);
`BrokerCollector` turns the stats of every broker transport into `ocpp_gateway_broker_*`
families only when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp_gateway.transports.broker.contract import CommandStatus

__all__ = ["BrokerCollector", "BrokerStats", "StatsSource"]


@dataclass(slots=True)
class BrokerStats:
    """Counters a broker transport keeps for the metrics layer (read them, never reset them).

    Attributes:
        published: frames the broker acknowledged.
        publish_failures: frames the broker did not take (the link was then closed).
        publish_seconds: sum of the publish-to-acknowledgement latencies of `published`.
        stale_dropped: backend frames dropped for a wrong epoch or an unknown charge point.
        late_answers: charge point answers to commands that were no longer in flight.
        ownership_changes: charge points this node lost to a newer owner.
        commands: command answers sent, by status.
        disconnects: times the broker connection was lost.
        publishing: frames waiting for their acknowledgement now.
    """

    published: int = 0
    publish_failures: int = 0
    publish_seconds: float = 0.0
    stale_dropped: int = 0
    late_answers: int = 0
    ownership_changes: int = 0
    commands: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in CommandStatus})
    disconnects: int = 0
    publishing: int = 0


class StatsSource(Protocol):
    """What the server and the metrics see of a broker transport (NATS, Redis Streams)."""

    name: str
    stats: BrokerStats

    def ready(self) -> bool:
        """True while the broker can take frames."""
        ...

    @property
    def connected_links(self) -> int:
        """Links open now."""
        ...

    @property
    def pending_commands(self) -> int:
        """Commands in flight or waiting, over all links."""
        ...


class BrokerCollector:
    """A prometheus_client collector of broker transports' counters, read at scrape time
    (nothing on the hot path). Register it once: `registry.register(BrokerCollector([...]))`.

    Metrics (label `transport`: the configured name; `status`: a `CommandStatus`):
    `ocpp_gateway_broker_connected` (1 while ready), `ocpp_gateway_broker_links`,
    `ocpp_gateway_broker_publishing` (frames awaiting acknowledgement),
    `ocpp_gateway_broker_pending_commands`, `ocpp_gateway_broker_published_total`,
    `ocpp_gateway_broker_publish_failures_total`, `ocpp_gateway_broker_publish_seconds`
    (summary: count and sum of publish-to-acknowledgement latency),
    `ocpp_gateway_broker_ownership_changes_total`, `ocpp_gateway_broker_commands_total`,
    `ocpp_gateway_broker_stale_dropped_total`, `ocpp_gateway_broker_late_answers_total`,
    `ocpp_gateway_broker_disconnects_total`.

    Args:
        transports: the broker transports to export.
    """

    def __init__(self, transports: Iterable[StatsSource]) -> None:
        self.transports = list(transports)

    def describe(self) -> list[Any]:
        """Returns: nothing (the families are built at collect time)."""
        return []

    def collect(self) -> Iterator[Any]:
        """Yields: the metric families."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            SummaryMetricFamily,
        )

        prefix = "ocpp_gateway_broker_"
        labels = ["transport"]
        gauges = {
            "connected": GaugeMetricFamily(
                prefix + "connected", "1 while the broker takes frames.", labels=labels
            ),
            "links": GaugeMetricFamily(
                prefix + "links", "Charge point links open now.", labels=labels
            ),
            "publishing": GaugeMetricFamily(
                prefix + "publishing", "Frames waiting for the broker's ack.", labels=labels
            ),
            "pending": GaugeMetricFamily(
                prefix + "pending_commands", "Commands in flight or queued.", labels=labels
            ),
        }
        counters = {
            "published": CounterMetricFamily(
                prefix + "published", "Frames the broker acknowledged.", labels=labels
            ),
            "publish_failures": CounterMetricFamily(
                prefix + "publish_failures", "Frames the broker did not take.", labels=labels
            ),
            "ownership_changes": CounterMetricFamily(
                prefix + "ownership_changes",
                "Charge points this node lost to a newer owner.",
                labels=labels,
            ),
            "stale_dropped": CounterMetricFamily(
                prefix + "stale_dropped",
                "Backend frames dropped for a wrong epoch or unknown charge point.",
                labels=labels,
            ),
            "late_answers": CounterMetricFamily(
                prefix + "late_answers",
                "Charge point answers to commands no longer in flight.",
                labels=labels,
            ),
            "disconnects": CounterMetricFamily(
                prefix + "disconnects", "Times the broker connection was lost.", labels=labels
            ),
        }
        latency = SummaryMetricFamily(
            prefix + "publish_seconds", "Publish to broker acknowledgement.", labels=labels
        )
        commands = CounterMetricFamily(
            prefix + "commands", "Command outcomes.", labels=["transport", "status"]
        )
        for transport in self.transports:
            name = [transport.name]
            stats = transport.stats
            gauges["connected"].add_metric(name, 1.0 if transport.ready() else 0.0)
            gauges["links"].add_metric(name, transport.connected_links)
            gauges["publishing"].add_metric(name, stats.publishing)
            gauges["pending"].add_metric(name, transport.pending_commands)
            for key, family in counters.items():
                family.add_metric(name, getattr(stats, key))
            latency.add_metric(name, stats.published, stats.publish_seconds)
            for status, count in stats.commands.items():
                commands.add_metric([transport.name, status], count)
        yield from gauges.values()
        yield from counters.values()
        yield latency
        yield commands
