"""CPU per round trip of the gateway and its baseline relays, interleaved, several repetitions.

A shorter, fairer A/B than the full run: every target runs in front of the same test CSMS and load
generator, and the repetitions alternate targets (gateway, bare relay, ocpp-lib relay, gateway,
...) so that drift of the shared machine hits all of them alike. Prints one row per target with
every repetition and the median.

    python benches/capacity/cpu_compare.py --repeats 5 --seconds 5 [--targets gateway,bare_relay]

`--before DIR` adds the target `gateway_before`: the gateway run from another source tree
(`DIR/python`, with its extension built or copied in), e.g. a checkout of an older commit, so
that a change is measured before and after in the same run. `--variant NAME:KEY=VALUE,...`
adds a target NAME: the gateway with those environment variables (e.g.
`aiohttp_up:OCPP_GATEWAY_UPSTREAM_CLIENT=aiohttp`), for A/B runs of a setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from ocpp_gateway.bench.loadgen import LoadGenerator
from ocpp_gateway.bench.runner import Run, settings_for
from ocpp_gateway.bench.targets import CsmsPool, Target, find_baselines, start_target


async def _measure(args: argparse.Namespace, out: Path) -> dict[str, list[dict[str, Any]]]:
    settings = settings_for("full", warmup=args.warmup)
    run = Run(settings, out)
    names = [name.strip() for name in args.targets.split(",") if name.strip()]
    baselines = find_baselines(Path(args.baselines) if args.baselines else None)
    csms = await CsmsPool.start(1)
    loadgen = LoadGenerator(1, ["127.0.1.1"])
    loadgen.start()
    targets: dict[str, Target] = {}
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        variants = dict(_variant(text) for text in args.variant)
        for name in names:
            before = name == "gateway_before"
            gateway = before or name in variants
            targets[name] = await start_target(
                "gateway" if gateway else name,
                csms,
                log=out / f"{name}.log",
                baselines=baselines,
                source=Path(args.before) if before else None,
                env=variants.get(name),
            )
        results = await run.interleaved_closed_loop(
            loadgen, csms, targets, args.repeats, args.connections, args.seconds
        )
    finally:
        for target in targets.values():
            target.stop()
        await loadgen.stop()
        csms.stop()
    return results


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split(",") if "=" in item)
    return name, env


def main() -> int:
    """Run the comparison and print a Markdown table.

    Returns:
        0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--targets", default="gateway,bare_relay,ocpp_lib_relay")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--baselines", metavar="DIR")
    parser.add_argument("--before", metavar="DIR", help="source tree of target gateway_before")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="a gateway target with extra environment variables (repeatable)",
    )
    parser.add_argument("--out", default="/tmp/cpu-compare", help="logs and raw JSON")
    args = parser.parse_args()
    if args.before and "gateway_before" not in args.targets.split(","):
        args.targets = f"gateway_before,{args.targets}"
    for text in args.variant:
        args.targets = f"{_variant(text)[0]},{args.targets}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(_measure(args, out))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    (out / "cpu_compare.json").write_text(json.dumps({"commit": commit, "results": results}))
    bare = (
        statistics.median(p["cpu_per_rt_us"] for p in results.get("bare_relay", []))
        if (results.get("bare_relay"))
        else None
    )
    print(f"commit {commit}, {args.repeats} x {args.seconds:g} s, {args.connections} connections")
    # Each repetition runs every target once, back to back: the ratio within a repetition
    # shares that repetition's machine load, so its median is the sturdier figure.
    bare_runs = [p["cpu_per_rt_us"] for p in results.get("bare_relay", [])]
    print(
        "| target | CPU µs / round trip, each run | median | vs bare relay (medians) "
        "| vs bare relay (median of paired runs) | round trips/s |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for name, phases in results.items():
        runs = [p["cpu_per_rt_us"] for p in phases]
        each = ", ".join(f"{value:.1f}" for value in runs)
        median = statistics.median(runs)
        ratio = f"{median / bare:.2f}x" if bare else "-"
        paired = (
            f"{statistics.median(a / b for a, b in zip(runs, bare_runs, strict=False)):.2f}x"
            if bare_runs
            else "-"
        )
        rate = statistics.median(p["rate"] for p in phases)
        print(f"| {name} | {each} | {median:.1f} | {ratio} | {paired} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
