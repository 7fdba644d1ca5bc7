"""Renders a capacity report: Markdown summary, capacity table and PNG plots (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ocpp_gateway.bench.targets import LABELS

__all__ = ["can_plot", "companions", "load", "markdown", "plots", "save", "write"]


_COLORS = {
    "gateway": "#1f77b4",
    "bare_relay": "#7f7f7f",
    "ocpp_lib_relay": "#d62728",
    "direct": "#2ca02c",
}


def load(path: Path) -> dict[str, Any]:
    """Read a report written by `save`.

    Args:
        path: report.json.

    Returns:
        The report mapping.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not JSON.
    """
    return dict(json.loads(path.read_text()))


def save(report: dict[str, Any], out: Path) -> Path:
    """Write the report as JSON (what the planner reads).

    Args:
        report: the run's report.
        out: directory.

    Returns:
        The path of report.json.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=1, sort_keys=True))
    return path


def _kb(value: float | None) -> str:
    return "-" if not value else f"{value / 1024:.1f}"


def _ms(latency: dict[str, float] | None, key: str) -> str:
    return "-" if not latency or key not in latency else f"{latency[key]:.2f}"


#: What to tell a user who lacks the plotting extra.
NO_PLOTS = "matplotlib is not installed (pip install 'ocpp-gateway[bench]')"


def can_plot() -> bool:
    """Whether matplotlib can be imported (the `bench` extra).

    Returns:
        True when the plots can be drawn.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plots(report: dict[str, Any], out: Path) -> list[Path]:
    """Draw the report's PNG plots.

    Args:
        report: the run's report.
        out: directory to write into.

    Returns:
        The files written: throughput_latency.png, cpu_by_action.png, memory_connections.png,
        heartbeat_latency.png (those with data).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    targets: dict[str, Any] = report.get("targets", {})

    # Throughput vs latency: the paced point and the closed-loop (maximum) point per target.
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, target in targets.items():
        points = []
        for phase in ("paced", "throughput"):
            data = target.get(phase, {})
            if data.get("latency_ms"):
                points.append((data["rate"], data["latency_ms"]))
        if not points:
            continue
        color = _COLORS.get(name)
        rates = [p[0] for p in points]
        axes.plot(rates, [p[1]["p50"] for p in points], "o-", color=color, label=f"{name} p50")
        axes.plot(rates, [p[1]["p99"] for p in points], "s--", color=color, label=f"{name} p99")
    axes.set_xlabel("CALL round trips per second (paced, then closed-loop maximum)")
    axes.set_ylabel("round-trip latency (ms)")
    axes.set_yscale("log")
    axes.set_title("Throughput vs latency")
    axes.grid(True, which="both", alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7, ncol=2)
        figure.tight_layout()
        written.append(out / "throughput_latency.png")
        figure.savefig(written[-1], dpi=90)
    plt.close(figure)

    # CPU per round trip by action.
    relays = [n for n in ("gateway", "bare_relay", "ocpp_lib_relay") if n in targets]
    actions = sorted({a for n in relays for a in targets[n].get("actions", {})})
    if actions:
        figure, axes = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / max(1, len(relays))
        for offset, name in enumerate(relays):
            values = [
                targets[name].get("actions", {}).get(a, {}).get("cpu_per_rt_us", 0.0)
                for a in actions
            ]
            axes.bar(
                [i + offset * width for i in range(len(actions))],
                values,
                width,
                label=name,
                color=_COLORS.get(name),
            )
        axes.set_xticks([i + width * (len(relays) - 1) / 2 for i in range(len(actions))])
        axes.set_xticklabels(actions, rotation=30, ha="right", fontsize=8)
        axes.set_ylabel("relay CPU per round trip (µs, log)")
        axes.set_yscale("log")
        axes.set_title("CPU per message by action")
        axes.grid(True, axis="y", which="both", alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        written.append(out / "cpu_by_action.png")
        figure.savefig(written[-1], dpi=90)
        plt.close(figure)

    scaling: dict[str, Any] = report.get("scaling", {})
    if any(s.get("steps") for s in scaling.values()):
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
        for name, data in scaling.items():
            steps = data.get("steps", [])
            if not steps:
                continue
            xs = [s["connected"] for s in steps]
            color = _COLORS.get(name)
            left.plot(xs, [s["rss"] / 2**20 for s in steps], "o-", color=color, label=name)
            right.plot(xs, [s["per_cp"] / 1024 for s in steps], "o-", color=color, label=name)
        left.set_xlabel("connected charge points")
        left.set_ylabel("resident memory, all processes (MiB)")
        left.set_title("Memory vs connections")
        right.set_xlabel("connected charge points")
        right.set_ylabel("RSS increase per charge point (KiB)")
        right.set_title("Memory per connection")
        for axes in (left, right):
            axes.grid(True, alpha=0.3)
            axes.legend(fontsize=8)
        figure.tight_layout()
        written.append(out / "memory_connections.png")
        figure.savefig(written[-1], dpi=90)
        plt.close(figure)

        figure, axes = plt.subplots(figsize=(7, 4))
        for name, data in scaling.items():
            steps = [s for s in data.get("steps", []) if s.get("heartbeat_ms")]
            if not steps:
                continue
            xs = [s["connected"] for s in steps]
            color = _COLORS.get(name)
            axes.plot(
                xs,
                [s["heartbeat_ms"]["p50"] for s in steps],
                "o-",
                color=color,
                label=f"{name} p50",
            )
            axes.plot(
                xs,
                [s["heartbeat_ms"]["p99"] for s in steps],
                "s--",
                color=color,
                label=f"{name} p99",
            )
        axes.set_xlabel("connected charge points")
        axes.set_ylabel("Heartbeat round trip (ms)")
        axes.set_yscale("log")
        axes.set_title("Heartbeat latency while holding N idle charge points")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        written.append(out / "heartbeat_latency.png")
        figure.savefig(written[-1], dpi=90)
        plt.close(figure)
    return written


def markdown(report: dict[str, Any], images: list[Path] | None = None) -> str:
    """The Markdown summary of a report.

    Args:
        report: the run's report.
        images: plot files to link (relative names are used).

    Returns:
        Markdown text.
    """
    meta = report.get("meta", {})
    settings = meta.get("settings", {})
    host = meta.get("machine", {})
    targets: dict[str, Any] = report.get("targets", {})
    summary = report.get("summary", {})
    lines = [
        f"# Capacity report ({settings.get('mode', '?')} run)",
        "",
        f"Machine: {host.get('nproc')} cores, {host.get('cpu_model')}, Linux "
        f"{host.get('kernel')}, Python {host.get('python')}, "
        f"{host.get('memory_bytes', 0) / 2**30:.0f} GiB RAM, open files "
        f"{host.get('nofile')}. Run took {meta.get('seconds', 0):.0f} s.",
        "",
        f"Fleet per target: {settings.get('charge_points')} charge points "
        f"({100 * settings.get('share_201', 0):.0f}% OCPP 2.0.1, the rest 1.6), "
        f"{settings.get('drivers')} of them sending back to back in the closed-loop phases "
        f"({settings.get('seconds')} s measured after {settings.get('warmup')} s warm-up). "
        "CPU figures are the target processes' own utime + stime.",
        "",
        "## Goals",
        "",
        "| goal | measured | limit | met |",
        "|---|---|---|---|",
    ]
    for check in summary.get("checks", []):
        lines.append(
            f"| {check['goal']} | {check['value']:.2f} ({check['detail']}) | {check['limit']:.2f} "
            f"| {'yes' if check['ok'] else '**no**'} |"
        )
    lines += [
        "",
        "## Capacity table",
        "",
        "| target | max round trips/s | CPU µs per round trip | cores at max "
        "| p50 / p99 / p99.9 ms "
        "(closed loop) | idle KB per CP | KB per CP under load | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, target in targets.items():
        phase = target.get("throughput", {})
        memory = target.get("memory", {})
        latency = phase.get("latency_ms")
        cpu = f"{phase.get('cpu_per_rt_us', 0):.1f}" if name != "direct" else "-"
        cores = f"{phase.get('target_cores', 0):.2f}" if name != "direct" else "-"
        lines.append(
            f"| {name} | {phase.get('rate', 0):,.0f} | {cpu} | {cores} | "
            f"{_ms(latency, 'p50')} / {_ms(latency, 'p99')} / {_ms(latency, 'p999')} | "
            f"{_kb(memory.get('idle_per_cp'))} | {_kb(memory.get('load_per_cp'))} | "
            f"{phase.get('errors', 0)} |"
        )
    paced_rate = report.get("paced_rate", 0.0)
    added = summary.get("added_latency_ms", {})
    lines += [
        "",
        f"## Latency at {paced_rate:,.0f} calls/s (half the gateway's maximum, open loop)",
        "",
        "Latency is measured from each call's scheduled send time. Added latency is the "
        "target's percentile minus the direct path's.",
        "",
        "| target | p50 ms | p99 ms | p99.9 ms | added p50 | added p99 | added p99.9 "
        "| achieved/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, target in targets.items():
        phase = target.get("paced", {})
        latency = phase.get("latency_ms")
        if not latency:
            continue

        def delta(key: str, who: str = name) -> str:
            value = added.get(f"{who}_{key}")
            return "-" if value is None else f"{value:+.2f}"

        lines.append(
            f"| {name} | {_ms(latency, 'p50')} | {_ms(latency, 'p99')} | "
            f"{_ms(latency, 'p999')} | {delta('p50')} | {delta('p99')} | {delta('p999')} | "
            f"{phase.get('rate', 0):,.0f} |"
        )
    lines += [
        "",
        "## CPU per round trip by action (µs)",
        "",
    ]
    relays = [n for n in ("gateway", "bare_relay", "ocpp_lib_relay") if n in targets]
    actions = sorted({a for n in relays for a in targets[n].get("actions", {})})
    if actions:
        lines.append("| action | " + " | ".join(relays) + " | gateway / bare |")
        lines.append("|---" * (len(relays) + 2) + "|")
        for action in actions:
            values = [
                targets[n].get("actions", {}).get(action, {}).get("cpu_per_rt_us", 0.0)
                for n in relays
            ]
            ratio = "-"
            if "gateway" in relays and "bare_relay" in relays:
                bare = values[relays.index("bare_relay")]
                if bare:
                    ratio = f"{values[relays.index('gateway')] / bare:.2f}"
            lines.append(
                f"| {action} | " + " | ".join(f"{v:.1f}" for v in values) + f" | {ratio} |"
            )
    simulated = {n: t["simulated"] for n, t in targets.items() if t.get("simulated")}
    if simulated:
        first = next(iter(simulated.values()))
        lines += [
            "",
            f"## Simulated fleet ('{first['profile']}' profile, half 1.6, half 2.0.1)",
            "",
            f"The package's simulator (`ocpp_gateway.simulate.run_fleet`) drives "
            f"{first['charge_points']:,} charge points at the profile's own pace: heartbeats, "
            f"status changes, transactions and meter samples, for {first['seconds']} s.",
            "",
            "| target | booted | answered calls/s | CPU µs per round trip | p50 / p99 ms | errors "
            "| timeouts |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, data in simulated.items():
            cost = f"{data['cpu_per_rt_us']:.1f}" if name != "direct" else "-"
            lines.append(
                f"| {name} | {data['booted']:,} | {data['rate']:,.0f} | {cost} | "
                f"{_ms(data['latency_ms'], 'p50')} / {_ms(data['latency_ms'], 'p99')} | "
                f"{sum(data['errors'].values())} | {data['timeouts']} |"
            )
    lines += [
        "",
        "## Reconnect storm",
        "",
        "Every charge point closes its socket, then all reconnect and boot at once, retrying "
        "refused attempts with jittered exponential backoff (0.1 s doubling, capped at 2 s).",
        "",
        "| target | charge points | booted | seconds until all booted | refused attempts | "
        "target CPU µs per reconnect |",
        "|---|---|---|---|---|---|",
    ]
    for name, target in targets.items():
        storm = target.get("storm")
        if not storm:
            continue
        refused = ", ".join(f"{k}: {v}" for k, v in sorted(storm["refused"].items())) or "0"
        cost = f"{storm['cpu_per_handshake_us']:.0f}" if name != "direct" else "-"
        lines.append(
            f"| {name} | {storm['charge_points']:,} | {storm['booted']:,} | "
            f"{storm['seconds']:.2f} | {refused} | {cost} |"
        )
    scaling: dict[str, Any] = report.get("scaling", {})
    for name, data in scaling.items():
        layout = data.get("layout", {})
        lines += [
            "",
            f"## Connection scaling: {name}",
            "",
            f"{layout.get('instances')} instance(s) x {layout.get('workers_per_instance')} "
            f"worker(s), {layout.get('csms_processes')} CSMS and "
            f"{layout.get('loadgen_processes')} load-generator processes. Reached "
            f"**{data.get('reached', 0):,}** idle charge points.",
            "",
            "| charge points | connected | connects/s | RSS MiB | KB per CP "
            "| heartbeat p50 / p99 ms | failures |",
            "|---|---|---|---|---|---|---|",
        ]
        for step in data.get("steps", []):
            hb = step.get("heartbeat_ms")
            failures = ", ".join(f"{k}: {v}" for k, v in step["failures"].items()) or "0"
            lines.append(
                f"| {step['charge_points']:,} | {step['connected']:,} | "
                f"{step['connect_rate']:,.0f} | {step['rss'] / 2**20:,.0f} | "
                f"{_kb(step['per_cp'])} | {_ms(hb, 'p50')} / {_ms(hb, 'p99')} | {failures} |"
            )
    saturated = summary.get("loadgen_saturated", [])
    lines += ["", "## Load generator", ""]
    for name, target in targets.items():
        phase = target.get("throughput", {})
        if phase:
            lines.append(
                f"- {name}: load generator used {phase.get('loadgen_cpu', 0):.1f} CPU s "
                f"(busiest process {100 * phase.get('loadgen_busiest', 0):.0f}% of a core), "
                f"test CSMS {phase.get('csms_cpu', 0):.1f} CPU s, target "
                f"{phase.get('target_cpu', 0):.1f} CPU s in {phase.get('seconds', 0)} s."
            )
    if saturated:
        lines.append(
            f"- Saturated (a load-generator process above 90% of a core): "
            f"{', '.join(saturated)}. Their maximum rate is a floor; CPU per round trip is "
            "unaffected (it comes from the target's own accounting)."
        )
    notes = report.get("notes", [])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    if images:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in images]
    lines += ["", "Targets: " + "; ".join(f"`{k}`: {v}" for k, v in LABELS.items()), ""]
    return "\n".join(lines)


def companions(folder: Path) -> str:
    """Sections for the runs kept beside a capacity report: `tls.json` (`bench tls`) and
    `broker_floor.json` (`benches/capacity/broker_compare.py` with the bare relays).

    Args:
        folder: the report's directory.

    Returns:
        Markdown (empty when neither file is there).
    """
    from ocpp_gateway.bench.tls import flood_table, table

    lines: list[str] = []
    tls_file = folder / "tls.json"
    if tls_file.is_file():
        tls = json.loads(tls_file.read_text())
        meta = tls.get("meta", {})
        load = meta.get("load_before", [0])[0], meta.get("load_after", [0])[0]
        lines += [
            "",
            "## TLS (`ocpp-gateway bench tls`)",
            "",
            f"Setups side by side in one run (load average {load[0]:.1f} at the start, "
            f"{load[1]:.1f} at the end); ratios to `ws` paired per repetition; handshake CPU "
            "is per connection minus a plain connection's.",
            "",
            table(tls.get("summary", {})),
        ]
        if tls.get("flood"):
            lines += ["", flood_table(tls["flood"])]
    broker_file = folder / "broker_floor.json"
    if broker_file.is_file():
        broker = json.loads(broker_file.read_text())
        lines += [
            "",
            "## Broker path against bare relays (`broker_compare.py`)",
            "",
            "| target | relay µs/rt | broker µs/rt | backend µs/rt | relay KB/idle CP |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, data in broker.items():

            def median(key: str, phases: list[dict[str, Any]] = data["phases"]) -> float:
                values = sorted(p[key] for p in phases if key in p)
                return values[len(values) // 2] if values else float("nan")

            idle = data.get("idle", {}).get("gateway_kb_per_cp", float("nan"))
            lines.append(
                f"| {name} | {median('gateway_us'):.1f} | {median('broker_us'):.1f} | "
                f"{median('backend_us'):.1f} | {idle:.1f} |"
            )
    return "\n".join(lines) + ("\n" if lines else "")


def write(report: dict[str, Any], out: Path) -> Path:
    """Write report.json, the plots and report.md into `out` (with the TLS and broker runs
    kept beside it, see `companions`).

    Args:
        report: the run's report.
        out: directory.

    Returns:
        The path of report.md.
    """
    save(report, out)
    if can_plot():
        images = plots(report, out)
    else:
        images = []
        notes = list(report.get("notes", []))
        report = dict(report, notes=[*notes, f"No plots: {NO_PLOTS}."])
    path = out / "report.md"
    path.write_text(markdown(report, images) + companions(out))
    return path
