"""Figures from raw measurements, and the capacity report's summary.

Percentiles, ratios per charge point and per second, the load generators' answers merged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ocpp_gateway.bench.procs import Usage

__all__ = [
    "idle_cpu",
    "merge_connect",
    "merge_storm",
    "per",
    "percentiles",
    "summarize",
    "summarize_phase",
]


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max of latencies, in milliseconds.

    Args:
        values: latencies in seconds.

    Returns:
        Percentiles in ms (empty mapping when there are no values).
    """
    if not values:
        return {}
    ordered = sorted(values)
    last = len(ordered) - 1

    def at(q: float) -> float:
        return ordered[min(last, round(q * last))] * 1e3

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": ordered[-1] * 1e3,
        "count": float(len(ordered)),
    }


def idle_cpu(before: Usage, after: Usage, held: int) -> float:
    """CPU microseconds per charge point-second between two readings of idle processes.

    Args:
        before, after: the readings.
        held: charge points connected meanwhile.

    Returns:
        The figure (NaN without charge points).
    """
    return per((after.cpu - before.cpu) * 1e6, held * max(1e-9, after.at - before.at))


def per(amount: float, count: float) -> float:
    """amount / count, or 0.0 when count is zero.

    Args:
        amount: numerator.
        count: denominator.

    Returns:
        The ratio.
    """
    return amount / count if count else 0.0


def _add_counts(answers: Sequence[dict[str, Any]], key: str) -> dict[str, int]:
    """The workers' counters under `key` (reason -> count), added up."""
    total: dict[str, int] = {}
    for answer in answers:
        for reason, count in answer[key].items():
            total[reason] = total.get(reason, 0) + count
    return total


def merge_connect(answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add up the workers' answers to "connect".

    Args:
        answers: one per worker.

    Returns:
        connected, total held, failures by reason, seconds (slowest worker), load-generator CPU.
    """
    failures = _add_counts(answers, "failures")
    return {
        "connected": sum(a["connected"] for a in answers),
        "total": sum(a["total"] for a in answers),
        "failures": failures,
        "seconds": max((a["seconds"] for a in answers), default=0.0),
        "loadgen_cpu": sum(a["cpu"] for a in answers),
    }


def merge_storm(answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add up the workers' answers to "storm".

    Args:
        answers: one per worker.

    Returns:
        charge_points (dropped), booted (back), seconds (slowest worker), refused (failed
        attempts by reason), refused_total, loadgen_cpu.
    """
    refused = _add_counts(answers, "refused")
    return {
        "charge_points": sum(a["charge_points"] for a in answers),
        "booted": sum(a["booted"] for a in answers),
        "seconds": max((a["seconds"] for a in answers), default=0.0),
        "refused": refused,
        "refused_total": sum(refused.values()),
        "loadgen_cpu": sum(a["cpu"] for a in answers),
    }


def summarize_phase(
    answers: Sequence[dict[str, Any]],
    before: Usage,
    after: Usage,
    csms_before: Usage,
    csms_after: Usage,
    seconds: float,
) -> dict[str, Any]:
    """Combine the workers' answers of one timed phase with the CPU the processes used.

    Args:
        answers: one per load-generator worker.
        before: target usage at the start of the measured window.
        after: target usage at its end.
        csms_before: CSMS usage at the start.
        csms_after: CSMS usage at the end.
        seconds: length of the measured window.

    Returns:
        rate, calls, errors, latency percentiles (ms), CPU seconds of target, CSMS and load
        generator, target CPU per round trip (µs), load-generator utilisation per process.
    """
    calls = sum(sum(a["by_action"].values()) for a in answers)
    errors = sum(sum(a["errors"].values()) for a in answers)
    latencies = [x for a in answers for x in a["latencies"]]
    target_cpu = after.cpu - before.cpu
    loadgen_cpu = sum(a["cpu"] for a in answers)
    busiest = max((per(a["cpu"], a["wall"]) for a in answers), default=0.0)
    return {
        "seconds": seconds,
        "calls": calls,
        "rate": per(calls, seconds),
        "errors": errors,
        "failed": sum(a["failed"] for a in answers),
        "latency_ms": percentiles(latencies),
        "target_cpu": target_cpu,
        "target_cores": per(target_cpu, seconds),
        "cpu_per_rt_us": per(target_cpu * 1e6, calls),
        "csms_cpu": csms_after.cpu - csms_before.cpu,
        "loadgen_cpu": loadgen_cpu,
        "loadgen_busiest": busiest,
        "loadgen_saturated": busiest > 0.9,
        "target_rss": after.rss,
    }


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures and the check of each target against its goal.

    Args:
        report: a report whose scenarios have run.

    Returns:
        {"checks": [...], "added_latency_ms": {...}, ...}.
    """
    targets = report["targets"]
    checks: list[dict[str, Any]] = []

    def cpu(name: str) -> float:
        return float(targets.get(name, {}).get("throughput", {}).get("cpu_per_rt_us", 0.0))

    gateway, bare, lib = cpu("gateway"), cpu("bare_relay"), cpu("ocpp_lib_relay")
    if gateway and bare:
        checks.append(
            {
                "goal": "gateway CPU per round trip <= 1.25x the bare relay's",
                "value": gateway / bare,
                "limit": 1.25,
                "ok": gateway / bare <= 1.25,
                "detail": f"{gateway:.1f} µs vs {bare:.1f} µs",
            }
        )
    if gateway and lib:
        checks.append(
            {
                "goal": "gateway CPU per round trip >= 5x lower than the ocpp-library relay's",
                "value": lib / gateway,
                "limit": 5.0,
                "ok": lib / gateway >= 5.0,
                "detail": f"{lib:.1f} µs vs {gateway:.1f} µs",
            }
        )
    added: dict[str, float] = {}
    direct = targets.get("direct", {}).get("paced", {}).get("latency_ms", {})
    for name in ("gateway", "bare_relay", "ocpp_lib_relay"):
        mine = targets.get(name, {}).get("paced", {}).get("latency_ms", {})
        if mine and direct:
            for key in ("p50", "p99", "p999"):
                added[f"{name}_{key}"] = mine[key] - direct[key]
    if "gateway_p99" in added:
        checks.append(
            {
                "goal": "p99 added latency < 5 ms at half the gateway's max rate",
                "value": added["gateway_p99"],
                "limit": 5.0,
                "ok": added["gateway_p99"] < 5.0,
                "detail": f"at {report.get('paced_rate', 0):.0f} calls/s",
            }
        )
    scaling = report.get("scaling", {})
    gateway_scale = scaling.get("gateway", {})
    bare_scale = scaling.get("bare_relay", {})
    if gateway_scale.get("steps"):
        last = gateway_scale["steps"][-1]
        reference = bare_scale.get("steps", [{}])[-1].get("per_cp") if bare_scale else None
        if not reference:
            reference = targets.get("bare_relay", {}).get("memory", {}).get("idle_per_cp")
        goal = max(report["meta"]["settings"]["scale_steps"])
        checks.append(
            {
                "goal": f"{goal:,} idle charge points held",
                "value": float(gateway_scale.get("reached", 0)),
                "limit": float(goal),
                "ok": gateway_scale.get("reached", 0) >= goal,
                "detail": f"reached {gateway_scale.get('reached', 0):,}",
            }
        )
        if reference:
            checks.append(
                {
                    "goal": "gateway memory per idle charge point <= the bare relay's",
                    "value": last["per_cp"] / 1024,
                    "limit": reference / 1024,
                    "ok": last["per_cp"] <= reference,
                    "detail": f"{last['per_cp'] / 1024:.1f} KB vs {reference / 1024:.1f} KB "
                    f"at {last['connected']:,}",
                }
            )
    saturated = [
        name
        for name, target in targets.items()
        if target.get("throughput", {}).get("loadgen_saturated")
    ]
    return {"checks": checks, "added_latency_ms": added, "loadgen_saturated": saturated}
