"""CPU per round trip with 0, 1 and 2 second backends, against the bare relay, interleaved.

The gateway relays closed-loop CALLs of `--connections` charge points to the test CSMS; the
variants add observers (each its own WebSocket per charge point, receiving a copy of every CALL)
served by a second test CSMS pool, so the primary's CSMS is the same in every run. Reported is
the gateway's CPU per round trip (all its processes), each repetition alternating the targets
as in cpu_compare.py, and the median.

    python benches/capacity/fanout_cpu.py --repeats 3 --seconds 4 --connections 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from ocpp_gateway.bench.loadgen import LoadGenerator
from ocpp_gateway.bench.runner import Run, settings_for
from ocpp_gateway.bench.targets import CsmsPool, Target, find_baselines, start_target

EXTRA = {"gateway": 0, "gateway_1_observer": 1, "gateway_2_observers": 2}


def _backends(count: int, url: str) -> dict[str, str]:
    """The environment giving the gateway `count` observers at `url`."""
    if not count:
        return {}
    table = {
        f"observer{n}": {"role": "observer", "url": url.replace("/ocpp", f"/observer{n}")}
        for n in range(count)
    }
    return {"OCPP_GATEWAY_BACKENDS": json.dumps(table)}


async def _measure(args: argparse.Namespace, out: Path) -> dict[str, list[dict[str, Any]]]:
    run = Run(settings_for("full", warmup=args.warmup), out)
    names = ["bare_relay", *EXTRA]
    csms = await CsmsPool.start(1)
    second = await CsmsPool.start(1)
    loadgen = LoadGenerator(1, ["127.0.1.1"])
    loadgen.start()
    targets: dict[str, Target] = {}
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        baselines = find_baselines(None)
        for name in names:
            kind = "gateway" if name in EXTRA else name
            env = _backends(EXTRA.get(name, 0), second.url())
            env["OCPP_GATEWAY_SECURITY__MESSAGE_RATE"] = "0"
            targets[name] = await start_target(
                kind, csms, log=out / f"{name}.log", baselines=baselines, env=env
            )
        results = await run.interleaved_closed_loop(
            loadgen, csms, targets, args.repeats, args.connections, args.seconds
        )
    finally:
        for target in targets.values():
            target.stop()
        await loadgen.stop()
        csms.stop()
        second.stop()
    return results


def main() -> int:
    """Run the comparison and print a Markdown table.

    Returns:
        0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--out", default="/tmp/fanout-cpu", help="logs and raw JSON")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(_measure(args, out))
    (out / "fanout_cpu.json").write_text(json.dumps(results))
    bare = statistics.median(p["cpu_per_rt_us"] for p in results["bare_relay"])
    gateway = statistics.median(p["cpu_per_rt_us"] for p in results["gateway"])
    print(f"{args.repeats} x {args.seconds:g} s, {args.connections} connections")
    print("| target | CPU µs / round trip, each run | median | vs bare relay | vs gateway |")
    print("|---|---|---:|---:|---:|")
    for name, phases in results.items():
        runs = [p["cpu_per_rt_us"] for p in phases]
        median = statistics.median(runs)
        each = ", ".join(f"{value:.1f}" for value in runs)
        ratio, extra = median / bare, median - gateway
        print(f"| {name} | {each} | {median:.1f} | {ratio:.2f}x | {extra:+.1f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
