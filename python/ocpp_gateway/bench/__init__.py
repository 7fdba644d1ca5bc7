"""`ocpp-gateway bench`: the capacity-planning benchmark suite (run, report, plan).

ocpp-gateway bench --smoke --out /tmp/bench        # every scenario, tiny fleet, seconds
ocpp-gateway bench --out benches/results           # the full capacity run (~20 min)
ocpp-gateway bench report --from DIR/report.json   # re-render Markdown and plots
ocpp-gateway bench plan --charge-points 20000 --profile realistic-1.6 --from report.json
ocpp-gateway bench tls --out DIR                   # TLS beside plain ws and nginx in front
ocpp-gateway bench plan --fit --profile realistic-1.6 --from report.json \
    --tls wss_ec --tls-from tls.json               # how many wss charge points fit here
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway bench",
        description="Capacity run: the gateway against baseline relays and the direct path.",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny fleet, a few seconds")
    parser.add_argument("--out", default="bench-report", help="directory for the report")
    parser.add_argument("--targets", help="comma-separated subset of the targets")
    parser.add_argument("--scale-steps", help="comma-separated charge point counts")
    parser.add_argument("--scale-targets", help="targets of the scaling run ('' for none)")
    parser.add_argument("--seconds", type=float, help="measured seconds per load phase")
    parser.add_argument("--charge-points", type=int, help="fleet held per target")
    parser.add_argument("--drivers", type=int, help="connections sending in load phases")
    parser.add_argument("--storm", type=int, help="charge points in the reconnect storm")
    parser.add_argument("--gateway-config", help="gateway TOML (default: rate limit off)")
    parser.add_argument(
        "--baselines",
        metavar="DIR",
        help="directory of other baseline relays (default: those shipped in the package)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def _plan_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocpp-gateway bench plan",
        description="Cores and memory a fleet needs, from a capacity report's measured costs.",
    )
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--charge-points", type=int, help="plan for this fleet")
    size.add_argument(
        "--fit", action="store_true", help="how many charge points this machine holds instead"
    )
    parser.add_argument("--cores", type=int, help="with --fit: cores (default: this machine's)")
    parser.add_argument("--memory-gib", type=float, help="with --fit: memory (this machine's)")
    parser.add_argument("--profile", required=True, help="a simulator profile, e.g. realistic-1.6")
    parser.add_argument("--tls", metavar="SETUP", help="charge points on wss, e.g. wss_ec")
    parser.add_argument("--tls-from", help="tls.json of `ocpp-gateway bench tls`")
    parser.add_argument("--from", dest="source", required=True, help="report.json of a run")
    parser.add_argument(
        "--utilisation", type=float, default=0.6, help="share of a core to plan for (0.6)"
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    return parser


def _csv(text: str | None, cast: type = str) -> tuple[object, ...] | None:
    if text is None:
        return None
    return tuple(cast(item.strip()) for item in text.split(",") if item.strip())


def _run(argv: Sequence[str]) -> int:
    from rich.console import Console

    from ocpp_gateway.bench import report
    from ocpp_gateway.bench.runner import Run, Settings, settings_for
    from ocpp_gateway.bench.targets import BASELINE_TARGETS, TARGETS, find_baselines

    args = _run_parser().parse_args(list(argv))
    targets = _csv(args.targets)
    scale_targets = _csv(args.scale_targets)
    for name in (*(targets or ()), *(scale_targets or ())):
        if name not in TARGETS:
            print(f"error: unknown target {name!r} (one of {', '.join(TARGETS)})", file=sys.stderr)
            return 2
    baselines: Path | None = None
    preset = Settings.smoke() if args.smoke else Settings.full()
    wanted = set(preset.targets if targets is None else targets)
    wanted |= set(preset.scale_targets if scale_targets is None else scale_targets)
    if wanted & set(BASELINE_TARGETS):
        # Checked before anything starts: a missing baseline used to surface minutes later.
        try:
            baselines = find_baselines(Path(args.baselines) if args.baselines else None)
        except FileNotFoundError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    console = Console(stderr=True, quiet=args.quiet)
    if not report.can_plot():
        console.print(f"note: {report.NO_PLOTS}; the report will have no plots", markup=False)
    settings = settings_for(
        "smoke" if args.smoke else "full",
        targets=targets,
        scale_targets=scale_targets,
        scale_steps=_csv(args.scale_steps, int),
        seconds=args.seconds,
        charge_points=args.charge_points,
        drivers=args.drivers,
        storm_charge_points=args.storm,
        gateway_config=args.gateway_config,
        baselines=str(baselines) if baselines else None,
    )
    out = Path(args.out)
    run = Run(settings, out, console)
    result = asyncio.run(run.run())
    path = report.write(result, out)
    console.print(f"report: {path}")
    for check in result["summary"]["checks"]:
        mark = "met   " if check["ok"] else "MISSED"
        console.print(f"  {mark} {check['goal']}: {check['detail']}", markup=False)
    return 0


def _report(argv: Sequence[str]) -> int:
    from ocpp_gateway.bench import report

    parser = argparse.ArgumentParser(prog="ocpp-gateway bench report")
    parser.add_argument("--from", dest="source", required=True, help="report.json of a run")
    parser.add_argument("--out", help="directory (default: the report's own)")
    args = parser.parse_args(list(argv))
    source = Path(args.source)
    data = report.load(source)
    if not report.can_plot():
        print(f"note: {report.NO_PLOTS}; the report will have no plots", file=sys.stderr)
    print(report.write(data, Path(args.out) if args.out else source.parent))
    return 0


def _plan(argv: Sequence[str]) -> int:
    from ocpp_gateway.bench import report
    from ocpp_gateway.bench.planner import fit, machine, plan, render, render_fit, tls_costs

    parser = _plan_parser()
    args = parser.parse_args(list(argv))
    if bool(args.tls) != bool(args.tls_from):
        parser.error("--tls and --tls-from go together")
    try:
        data = report.load(Path(args.source))
        tls = None
        if args.tls:
            tls = tls_costs(json.loads(Path(args.tls_from).read_text()), args.tls)
        if args.fit:
            cores, memory = machine()
            cores = args.cores or cores
            memory = int(args.memory_gib * 2**30) if args.memory_gib else memory
            fitted = fit(data, args.profile, cores, memory, args.utilisation, tls)
            if args.json:
                print(json.dumps({**fitted.plan.as_dict(), "bound": fitted.bound}, indent=1))
            else:
                print(render_fit(fitted))
            return 0
        result = plan(data, args.charge_points, args.profile, args.utilisation, tls)
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict(), indent=1) if args.json else render(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ocpp-gateway bench`.

    Args:
        argv: arguments after `bench`; `sys.argv[1:]` when None.

    Returns:
        The exit status: 0 on success, 2 on bad arguments (including baseline relays that
        cannot be found, reported before anything starts).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "plan":
        return _plan(args[1:])
    if args and args[0] == "report":
        return _report(args[1:])
    if args and args[0] == "tls":
        from ocpp_gateway.bench import tls

        return tls.main(args[1:])
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
