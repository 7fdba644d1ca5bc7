"""Capacity planner: from measured per-call costs, the cores and memory a fleet needs.

With a TLS report (`ocpp-gateway bench tls`), the plan is for charge points on wss: per-call
costs scaled by the measured TLS/plain ratio, memory per charge point plus what TLS adds, and
the reconnect priced with a full TLS handshake each. `fit` answers the reverse question: how many
charge points this machine (or a given one) holds.

The traffic of one charge point comes from a simulator profile (`ocpp_gateway.simulate.PROFILES`,
e.g. "realistic-1.6"): heartbeats, status changes, transactions (Authorize, start, meter samples,
stop) at the profile's intervals. Each call costs the gateway CPU per round trip measured for its
action in a capacity report; memory per charge point and per worker come from the same report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ocpp_gateway.simulate import PROFILES, Profile

#: Charge points one worker may hold: two sockets each, under a 20,000 open-files limit.
__all__ = [
    "Fit",
    "Plan",
    "TlsCosts",
    "call_cost",
    "call_rates",
    "field_factor",
    "fit",
    "idle_cost",
    "machine",
    "memory_per_cp",
    "plan",
    "render",
    "render_fit",
    "tls_costs",
]


FILES_PER_WORKER = 20_000
FILES_RESERVED = 200


@dataclass(frozen=True)
class Plan:
    """What a fleet needs, with the figures it was derived from."""

    charge_points: int
    profile: str
    calls_per_second: float
    cpu_us_per_call: float
    cores: float
    workers: int
    memory_bytes: int
    memory_per_cp: float
    reconnect_seconds: float
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """The plan as a JSON-friendly mapping."""
        return {
            "charge_points": self.charge_points,
            "profile": self.profile,
            "calls_per_second": self.calls_per_second,
            "cpu_us_per_call": self.cpu_us_per_call,
            "cores": self.cores,
            "workers": self.workers,
            "memory_bytes": self.memory_bytes,
            "memory_per_cp": self.memory_per_cp,
            "reconnect_seconds": self.reconnect_seconds,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class TlsCosts:
    """What TLS adds to the gateway, from one setup of a TLS report.

    Attributes:
        setup: the setup's name in the report (e.g. "wss_ec").
        rt_ratio: CPU per round trip over plain ws's (paired median).
        extra_bytes_per_cp: memory per idle charge point over plain ws's.
        handshake_us: CPU of a full handshake (the dearer of TLS 1.2 and 1.3).
        resumed_us: CPU of a resumed handshake (the dearer of the two versions), or 0.
    """

    setup: str
    rt_ratio: float
    extra_bytes_per_cp: float
    handshake_us: float
    resumed_us: float


def tls_costs(report: dict[str, Any], setup: str) -> TlsCosts:
    """Read one setup's TLS costs from a TLS report (`tls.json`).

    Args:
        report: the TLS report.
        setup: a setup measured in it, e.g. "wss_ec", "mtls_ec", "nginx_ec".

    Returns:
        The costs.

    Raises:
        KeyError: the report has no such setup.
        ValueError: the setup lacks a figure the plan needs.
    """
    summary = report.get("summary", {})
    if setup not in summary:
        raise KeyError(f"no TLS setup {setup!r} in the report; measured: {', '.join(summary)}")
    row = summary[setup]
    if not row.get("rt_ratio") or row.get("extra_kb_per_cp") is None:
        raise ValueError(f"TLS setup {setup!r} lacks the round-trip ratio or the memory figure")
    handshakes = row.get("handshake_us") or {}
    full = [v for k, v in handshakes.items() if k.startswith("full") and v]
    resumed = [v for k, v in handshakes.items() if k.startswith("resumed") and v]
    return TlsCosts(
        setup,
        float(row["rt_ratio"]),
        max(0.0, float(row["extra_kb_per_cp"]) * 1024),
        max(full) if full else 0.0,
        max(resumed) if resumed else 0.0,
    )


def call_rates(profile: Profile) -> dict[str, float]:
    """Average CALLs per second of one charge point following `profile`, by action.

    Args:
        profile: a simulator profile.

    Returns:
        action -> calls per second (actions named as on the wire of the profile's version).
    """
    rates: dict[str, float] = {}

    def add(action: str, per_second: float) -> None:
        if per_second > 0:
            rates[action] = rates.get(action, 0.0) + per_second

    connectors = profile.connectors
    if profile.heartbeat_interval > 0:
        add("Heartbeat", 1.0 / profile.heartbeat_interval)
    if profile.status_interval > 0:
        add("StatusNotification", connectors / profile.status_interval)
    if profile.transaction_interval > 0:
        cycle = profile.transaction_interval + profile.transaction_duration
        sessions = connectors / cycle  # transactions started per second
        charging = connectors * profile.transaction_duration / cycle  # connectors busy
        meters = charging / profile.meter_interval if profile.meter_interval > 0 else 0.0
        add("Authorize", sessions)
        add("StatusNotification", 2 * sessions)  # Occupied/Charging, then Available
        if profile.version == "ocpp1.6":
            add("StartTransaction", sessions)
            add("StopTransaction", sessions)
            add("MeterValues", meters)
        else:
            add("TransactionEvent", 2 * sessions + meters)
    return rates


def _version_label(version: str) -> str:
    return "1.6" if version == "ocpp1.6" else "2.0.1"


def call_cost(report: dict[str, Any], action: str, version: str) -> tuple[float, bool]:
    """The gateway's CPU µs per round trip of an action, from a report.

    Args:
        report: a capacity report.
        action: the action.
        version: "ocpp1.6" or "ocpp2.0.1".

    Returns:
        (µs, measured): the action's own figure when the report has it, else the busy mix's.

    Raises:
        ValueError: the report has no gateway throughput figure at all.
    """
    gateway = report.get("targets", {}).get("gateway", {})
    by_action = gateway.get("actions", {})
    entry = by_action.get(f"{action} ({_version_label(version)})")
    if entry and entry.get("cpu_per_rt_us"):
        return float(entry["cpu_per_rt_us"]), True
    mix = gateway.get("throughput", {}).get("cpu_per_rt_us")
    if not mix:
        raise ValueError("the report has no gateway CPU per round trip")
    return float(mix), False


def field_factor(report: dict[str, Any]) -> float:
    """How much more a call costs at field rates than in the closed-loop phase.

    Args:
        report: a capacity report.

    Returns:
        The gateway's simulated-fleet CPU per round trip over its closed-loop figure (at least
        1.0; 1.0 when either is missing).
    """
    gateway = report.get("targets", {}).get("gateway", {})
    simulated = gateway.get("simulated", {}).get("cpu_per_rt_us", 0.0)
    closed = gateway.get("throughput", {}).get("cpu_per_rt_us", 0.0)
    return max(1.0, simulated / closed) if simulated and closed else 1.0


def idle_cost(report: dict[str, Any]) -> float:
    """CPU µs per second that one idle connection costs the gateway (largest scaling step).

    Args:
        report: a capacity report.

    Returns:
        µs per charge point per second; 0.0 when the report has no such figure.
    """
    steps = report.get("scaling", {}).get("gateway", {}).get("steps", [])
    return float(steps[-1].get("idle_cpu_us_per_cp_s", 0.0)) if steps else 0.0


def memory_per_cp(report: dict[str, Any]) -> tuple[float, float, str]:
    """Gateway memory per idle charge point and base memory per worker process.

    Args:
        report: a capacity report.

    Returns:
        (bytes per charge point, bytes per worker process, where the figure comes from).

    Raises:
        ValueError: no gateway memory figure in the report.
    """
    scaling = report.get("scaling", {}).get("gateway", {})
    steps = scaling.get("steps", [])
    gateway = report.get("targets", {}).get("gateway", {})
    memory = gateway.get("memory", {})
    per_worker = memory.get("base_rss", 0) / max(1, memory.get("processes", 1))
    if steps:
        last = steps[-1]
        if scaling.get("base_rss") and last.get("processes"):
            per_worker = scaling["base_rss"] / last["processes"]
        loaded = memory.get("load_per_cp", 0.0) - memory.get("idle_per_cp", 0.0)
        return (
            float(last["per_cp"]) + max(0.0, loaded),
            float(per_worker),
            f"scaling step {last['connected']:,}",
        )
    if memory.get("idle_per_cp"):
        per_cp = max(memory["idle_per_cp"], memory.get("load_per_cp", 0.0))
        return float(per_cp), float(per_worker), "memory scenario"
    raise ValueError("the report has no gateway memory figure")


def plan(
    report: dict[str, Any],
    charge_points: int,
    profile_name: str,
    utilisation: float = 0.6,
    tls: TlsCosts | None = None,
) -> Plan:
    """Size a gateway deployment for a fleet.

    Args:
        report: a capacity report (`report.json`).
        charge_points: fleet size.
        profile_name: a key of `ocpp_gateway.simulate.PROFILES`.
        utilisation: the share of each core the plan allows the gateway to use in steady state
            (headroom for bursts, reconnect storms and the OS).
        tls: what TLS adds (`tls_costs`), for charge points on wss; None for ws.

    Returns:
        The plan.

    Raises:
        KeyError: unknown profile.
        ValueError: the report lacks the figures needed, or bad arguments.
    """
    if charge_points < 1:
        raise ValueError("charge_points must be at least 1")
    if not 0 < utilisation <= 1:
        raise ValueError("utilisation must be within (0, 1]")
    if profile_name not in PROFILES:
        raise KeyError(f"unknown profile {profile_name!r}; known: {', '.join(sorted(PROFILES))}")
    profile = PROFILES[profile_name]
    notes: list[str] = []
    rates = call_rates(profile)
    factor = field_factor(report)
    if tls is not None:
        notes.append(
            f"TLS ({tls.setup}): per-call costs x{tls.rt_ratio:.2f}, "
            f"+{tls.extra_bytes_per_cp / 1024:.1f} KB per charge point (measured against ws)"
        )
    if factor > 1.0:
        notes.append(
            f"per-call costs scaled by {factor:.2f}: the simulated fleet's CPU per round trip "
            "over the closed-loop figure (calls at field rates do not share event-loop wake-ups)"
        )
    cpu_per_cp = 0.0
    for action, rate in rates.items():
        cost, measured = call_cost(report, action, profile.version)
        if not measured:
            notes.append(f"{action}: no per-action figure, used the busy mix's {cost:.1f} µs")
        cpu_per_cp += rate * cost * factor * (tls.rt_ratio if tls else 1.0) * 1e-6
    per_second = sum(rates.values())
    calls_only = cpu_per_cp
    idle = idle_cost(report)
    if idle:
        cpu_per_cp += idle * 1e-6
        notes.append(f"holding a connection costs {idle:.2f} µs of CPU per second (pings, timers)")
    cores = charge_points * cpu_per_cp / utilisation
    per_cp, per_worker, source = memory_per_cp(report)
    if tls is not None:
        per_cp += tls.extra_bytes_per_cp
    per_worker_cps = (FILES_PER_WORKER - FILES_RESERVED) // 2
    workers = max(1, math.ceil(cores), math.ceil(charge_points / per_worker_cps))
    memory = int(charge_points * per_cp * 1.25 + workers * per_worker)
    notes.append(f"memory per charge point from the {source}, plus 25% headroom")
    # Reconnect: how long the whole fleet takes to be admitted again after an outage.
    storm = report.get("targets", {}).get("gateway", {}).get("storm", {})
    handshake_us = float(storm.get("cpu_per_handshake_us", 0.0))
    if tls is not None and handshake_us:
        handshake_us += tls.handshake_us
    storm_cores = max(1, math.ceil(cores))
    reconnect = charge_points * handshake_us * 1e-6 / storm_cores if handshake_us else 0.0
    if handshake_us:
        notes.append(
            f"a full-fleet reconnect costs {handshake_us:.0f} µs of gateway CPU per charge point "
            f"(measured storm{', plus a full TLS handshake' if tls else ''}): "
            f"about {reconnect:.0f} s on {storm_cores} core(s)"
        )
        if tls is not None and tls.resumed_us:
            notes.append(
                f"a resumed TLS handshake costs {tls.resumed_us:.0f} µs instead of "
                f"{tls.handshake_us:.0f} µs (session tickets; share ticket keys across workers "
                "and nodes: security.tls_ticket_key_file)"
            )
    if workers > math.ceil(cores):
        notes.append(
            f"{workers} workers are needed for open files alone "
            f"(≤{per_worker_cps:,} charge points per worker)"
        )
    return Plan(
        charge_points=charge_points,
        profile=profile_name,
        calls_per_second=per_second * charge_points,
        cpu_us_per_call=(calls_only / per_second * 1e6) if per_second else 0.0,
        cores=cores,
        workers=workers,
        memory_bytes=memory,
        memory_per_cp=per_cp,
        reconnect_seconds=reconnect,
        notes=tuple(notes),
    )


def render(result: Plan) -> str:
    """A plan as readable text.

    Args:
        result: the plan.

    Returns:
        Lines of text.
    """
    lines = [
        f"fleet: {result.charge_points:,} charge points, profile {result.profile}",
        f"traffic: {result.calls_per_second:,.1f} CALLs/s "
        f"(mean gateway CPU {result.cpu_us_per_call:.1f} µs per round trip)",
        f"cores: {result.cores:.2f} (at the chosen utilisation), "
        f"workers: {result.workers} (--workers)",
        f"memory: {result.memory_bytes / 2**20:,.0f} MiB "
        f"({result.memory_per_cp / 1024:.1f} KB per charge point)",
    ]
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


@dataclass(frozen=True)
class Fit:
    """How many charge points a machine holds, and what bounds it."""

    charge_points: int
    bound: str
    cores: int
    memory_bytes: int
    by_cpu: int
    by_memory: int
    plan: Plan


def machine() -> tuple[int, int]:
    """This machine's cores and memory.

    Returns:
        (cores, bytes of memory) from os.cpu_count() and /proc/meminfo (0 when unreadable).
    """
    import os

    memory = 0
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return os.cpu_count() or 1, memory


def fit(
    report: dict[str, Any],
    profile_name: str,
    cores: int,
    memory_bytes: int,
    utilisation: float = 0.6,
    tls: TlsCosts | None = None,
) -> Fit:
    """The largest fleet a machine holds under `plan`'s model.

    Args:
        report: a capacity report.
        profile_name: a simulator profile.
        cores: cores of the machine.
        memory_bytes: its memory (a quarter is left to the system).
        utilisation: as for `plan`.
        tls: as for `plan`.

    Returns:
        The fit, with the plan of that fleet.

    Raises:
        KeyError, ValueError: as `plan`.
    """
    if cores < 1 or memory_bytes <= 0:
        raise ValueError("cores and memory must be positive")
    unit = plan(report, 1000, profile_name, utilisation, tls)
    per_cp_cores = unit.cores / 1000
    usable = memory_bytes * 0.75
    per_cp_bytes = unit.memory_per_cp * 1.25
    workers_bytes = (unit.memory_bytes - 1000 * per_cp_bytes) / max(1, unit.workers)
    by_cpu = int(cores / per_cp_cores) if per_cp_cores > 0 else 10**9
    by_memory = int(max(0.0, usable - cores * workers_bytes) / per_cp_bytes)
    count = max(1, min(by_cpu, by_memory))
    return Fit(
        charge_points=count,
        bound="CPU" if by_cpu <= by_memory else "memory",
        cores=cores,
        memory_bytes=memory_bytes,
        by_cpu=by_cpu,
        by_memory=by_memory,
        plan=plan(report, count, profile_name, utilisation, tls),
    )


def render_fit(result: Fit) -> str:
    """A fit as readable text.

    Args:
        result: the fit.

    Returns:
        Lines of text.
    """
    lines = [
        f"machine: {result.cores} cores, {result.memory_bytes / 2**30:.1f} GiB",
        f"fits: {result.charge_points:,} charge points ({result.bound} bound: "
        f"{result.by_cpu:,} by CPU at the utilisation, {result.by_memory:,} by memory with a "
        "quarter left to the system)",
    ]
    return "\n".join([*lines, render(result.plan)])
