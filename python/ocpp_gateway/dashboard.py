"""The demo's view: fleet and gateway counters as a live rich panel or as plain lines."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ocpp_gateway.simulate import FleetSnapshot, FleetStats

__all__ = ["Dashboard", "View"]


def _labelled_sums(collector: object, label: str) -> dict[str, float]:
    """Sum the `_total` samples of a prometheus_client counter by one label."""
    sums: dict[str, float] = {}
    collect = getattr(collector, "collect", None)
    if collect is None:
        return sums
    for metric in collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                key = sample.labels.get(label, "")
                sums[key] = sums.get(key, 0.0) + sample.value
    return sums


@dataclass(frozen=True, slots=True)
class View:
    """Everything one refresh shows, computed from two snapshots."""

    uptime: float
    target: dict[str, int]
    now: dict[str, FleetSnapshot]
    rates: dict[str, float]
    totals: dict[str, int]
    answered: dict[str, int]
    errors: dict[str, int]
    latency: dict[str, tuple[float | None, float | None]]
    p50: float | None
    p99: float | None
    rejected: dict[str, float]
    gateway_messages: float
    candidate: dict[str, float]  # a candidate's compared answers by outcome (none: empty)


def _merge(snapshots: Sequence[FleetSnapshot]) -> FleetSnapshot:
    def add(maps: Sequence[dict[str, int]]) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in maps:
            for k, v in m.items():
                out[k] = out.get(k, 0) + v
        return out

    latency = [sum(col) for col in zip(*(s.latency for s in snapshots), strict=True)]
    by_action: dict[str, list[int]] = {}
    for s in snapshots:
        for action, hist in s.latency_by_action.items():
            if action in by_action:
                by_action[action] = [a + b for a, b in zip(by_action[action], hist, strict=True)]
            else:
                by_action[action] = list(hist)
    return FleetSnapshot(
        at=max(s.at for s in snapshots),
        connected=sum(s.connected for s in snapshots),
        booted=sum(s.booted for s in snapshots),
        connects=sum(s.connects for s in snapshots),
        disconnects=sum(s.disconnects for s in snapshots),
        connect_failures=sum(s.connect_failures for s in snapshots),
        handshake_failures=add([s.handshake_failures for s in snapshots]),
        sent=add([s.sent for s in snapshots]),
        answered=add([s.answered for s in snapshots]),
        errors=add([s.errors for s in snapshots]),
        error_codes=add([s.error_codes for s in snapshots]),
        timeouts=add([s.timeouts for s in snapshots]),
        received_calls=add([s.received_calls for s in snapshots]),
        invalid_sent=sum(s.invalid_sent for s in snapshots),
        unmatched=sum(s.unmatched for s in snapshots),
        internal_errors=sum(s.internal_errors for s in snapshots),
        latency=latency,
        latency_by_action=by_action,
    )


def _compared(view: View) -> str:
    """A candidate's compared answers (ocpp_gateway_candidate_answers_total) by outcome."""
    counts = view.candidate
    return " ".join(f"{o} {counts.get(o, 0.0):.0f}" for o in ("agree", "disagree", "missing"))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


class Dashboard:
    """Turns fleet and gateway counters into a rich renderable or a plain line."""

    def __init__(
        self,
        url: str,
        metrics_url: str,
        target: dict[str, int],
        metrics: object,
        backend: str = "",
        api: str = "",
        console_url: str | None = None,
        candidate: str | None = None,
    ):
        self.url = url
        self.metrics_url = metrics_url
        self.backend = backend
        self.api = api
        self.console_url = console_url
        self.candidate = candidate
        self.target = target
        self._metrics = metrics
        self._started = time.monotonic()
        self._previous: FleetSnapshot | None = None

    def view(self, stats: dict[str, FleetStats]) -> View:
        now = time.monotonic()
        per_version = {v: s.snapshot(now) for v, s in stats.items()}
        total = _merge(list(per_version.values()))
        prev = self._previous
        elapsed = now - (prev.at if prev is not None else self._started)
        rates = {
            action: (count - prev.sent.get(action, 0)) / max(elapsed, 1e-9) if prev else 0.0
            for action, count in total.sent.items()
        }
        self._previous = total
        latency = {
            action: (total.latency_quantile(0.5, action), total.latency_quantile(0.99, action))
            for action in total.sent
        }
        gateway_metrics = self._metrics
        flush = getattr(gateway_metrics, "flush", None)  # hot-path counts are buffered
        if flush is not None:
            flush()
        rejected = _labelled_sums(getattr(gateway_metrics, "rejected", None), "error_code")
        messages = _labelled_sums(getattr(gateway_metrics, "messages", None), "direction")
        compared = getattr(gateway_metrics, "candidate_answers", None)
        candidate = _labelled_sums(compared, "outcome") if self.candidate else {}
        return View(
            uptime=now - self._started,
            target=self.target,
            now=per_version,
            rates=rates,
            totals=total.sent,
            answered=total.answered,
            errors=total.errors,
            latency=latency,
            p50=total.latency_quantile(0.5),
            p99=total.latency_quantile(0.99),
            rejected={k: v for k, v in rejected.items() if v},
            gateway_messages=sum(messages.values()),
            candidate=candidate,
        )

    def render(self, view: View) -> Panel:
        """The live view: header, messages by action, rejections by code."""
        connected = sum(s.connected for s in view.now.values())
        booted = sum(s.booted for s in view.now.values())
        header = Text()
        header.append("gateway  ", style="bold")
        header.append(f"{self.url}/ocpp/{{charge_point_id}}\n")
        if self.backend:
            header.append("backend  ", style="bold")
            header.append(f"{self.backend}\n")
        header.append("metrics  ", style="bold")
        header.append(f"{self.metrics_url}\n")
        if self.api:
            header.append("API      ", style="bold")
            header.append(f"{self.api}\n")
        if self.console_url:
            header.append("console  ", style="bold")
            header.append(f"{self.console_url}\n")
        if self.candidate:
            header.append("candidate", style="bold")
            header.append(f" {self.candidate}\n")
            header.append("compared ", style="bold")
            header.append(f"{_compared(view)}\n")
        header.append("fleet    ", style="bold")
        header.append(f"{connected}/{sum(self.target.values())} connected, {booted} booted  (")
        header.append(
            ", ".join(
                f"{v}: {s.connected}/{self.target[v]}"
                for v, s in view.now.items()
                if self.target[v]
            )
        )
        header.append(")\n")
        header.append("latency  ", style="bold")
        header.append(f"p50 {_ms(view.p50)} ms   p99 {_ms(view.p99)} ms   (CALL round trip)\n")
        header.append("uptime   ", style="bold")
        header.append(f"{view.uptime:.0f} s   frames through the gateway: ")
        header.append(f"{view.gateway_messages:.0f}")

        actions = Table(title="CALLs from charge points", expand=True)
        actions.add_column("action", no_wrap=True, min_width=18)
        for col in ("per s", "sent", "answered", "CALLERROR", "p50 ms", "p99 ms"):
            actions.add_column(col, justify="right")
        for action in sorted(view.totals, key=lambda a: -view.totals[a]):
            p50, p99 = view.latency[action]
            actions.add_row(
                action,
                f"{view.rates.get(action, 0.0):.1f}",
                str(view.totals[action]),
                str(view.answered.get(action, 0)),
                str(view.errors.get(action, 0)),
                _ms(p50),
                _ms(p99),
            )
        actions.add_row(
            Text("total", style="bold"),
            f"{sum(view.rates.values()):.1f}",
            str(sum(view.totals.values())),
            str(sum(view.answered.values())),
            str(sum(view.errors.values())),
            _ms(view.p50),
            _ms(view.p99),
        )

        rejected = Table(title="Rejected by the gateway")
        rejected.add_column("error code")
        rejected.add_column("frames", justify="right")
        for code, count in sorted(view.rejected.items(), key=lambda kv: -kv[1]):
            rejected.add_row(code, f"{count:.0f}")
        if not view.rejected:
            rejected.add_row(Text("none yet", style="dim"), "")
        invalid = sum(s.invalid_sent for s in view.now.values())
        note = Text(
            f"misbehaving charge points sent {invalid} invalid frames "
            "(over-long model names, unknown statuses); Ctrl-C stops the demo.",
            style="dim",
        )
        return Panel(Group(header, actions, rejected, note), title="ocpp-gateway demo")

    def line(self, view: View) -> str:
        """One plain summary line, for logs and pipes."""
        connected = sum(s.connected for s in view.now.values())
        booted = sum(s.booted for s in view.now.values())
        rejected = sum(view.rejected.values())
        codes = ", ".join(f"{k} {v:.0f}" for k, v in sorted(view.rejected.items()))
        return (
            f"[{view.uptime:6.0f}s] connected {connected}/{sum(self.target.values())} "
            f"booted {booted} | {sum(view.rates.values()):.1f} calls/s, "
            f"{sum(view.totals.values())} sent, {sum(view.answered.values())} answered | "
            f"rejected {rejected:.0f}{f' ({codes})' if codes else ''} | "
            f"rtt p50 {_ms(view.p50)} ms p99 {_ms(view.p99)} ms"
            + (f" | candidate {_compared(view)}" if self.candidate else "")
        )

    def summary(self, view: View) -> str:
        """A plain multi-line summary of the whole run."""
        lines = [self.line(view), f"metrics were at {self.metrics_url}"]
        for action in sorted(view.totals, key=lambda a: -view.totals[a]):
            p50, p99 = view.latency[action]
            lines.append(
                f"  {action:<28} sent {view.totals[action]:>7}  answered "
                f"{view.answered.get(action, 0):>7}  CALLERROR {view.errors.get(action, 0):>5}  "
                f"p50 {_ms(p50):>6} ms  p99 {_ms(p99):>6} ms"
            )
        return "\n".join(lines)
