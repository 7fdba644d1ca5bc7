"""CPU per CALL round trip through each broker transport next to the WebSocket upstream, with
the gateway's, the broker's and the backend's CPU apart; memory per idle charge point.

Each target runs as processes of its own: the gateway (`ocpp-gateway serve`, one worker), and
either the test CSMS (websocket) or a broker server (nats-server / redis-server from Debian)
plus the bench backend service (`broker_backend.py`, the `ocpp_gateway.backend` API answering
with the test CSMS's canned results). One load generator drives 100 connections closed loop;
repetitions alternate the targets. CPU comes from /proc/PID/stat over the measured window.

    python benches/capacity/broker_compare.py --repeats 3 --seconds 5 --idle 2000

Target `nats_bare` is the baseline of the broker path (`ocpp_gateway.bench.baselines.nats_relay`:
aiohttp + nats-py, each frame published with 3 headers and its PubAck awaited, answers from one
core-NATS subscription, nothing validated) with the same broker server and backend program;
`redis_bare` likewise on Redis (`redis_relay`: XADD awaited per frame, answers on pub/sub).

`--before DIR` runs the gateway of every target named with a `_before` suffix (e.g.
`--targets nats,nats_before`) from another source tree (`DIR/python`, with its extension built
or copied in), so that a change is measured before and after in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocpp_gateway.bench.loadgen import LoadGenerator
from ocpp_gateway.bench.procs import (
    BrokerServer,
    ProcessGroup,
    Usage,
    free_port,
    usage,
    wait_tcp_open,
)
from ocpp_gateway.bench.ramp import fleet_ids
from ocpp_gateway.bench.targets import CsmsPool

HERE = Path(__file__).resolve().parent


@dataclass
class Setup:
    name: str
    url: str
    gateway: subprocess.Popen[bytes]
    parts: dict[str, list[int]] = field(default_factory=dict)  # part -> root pids
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def usage(self, part: str) -> Usage:
        pids = [pid for root in self.parts[part] for pid in ProcessGroup(root, part).pids()]
        return usage(pids)

    def stop(self) -> None:
        for proc in [self.gateway, *self.procs]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [self.gateway, *self.procs]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as sink:
        return subprocess.Popen(
            command, stdout=sink, stderr=sink, env={**os.environ, **env}, start_new_session=True
        )


def _gateway(
    port: int, upstream: dict[str, str], log: Path, source: Path | None = None
) -> subprocess.Popen[bytes]:
    env = {
        "OCPP_GATEWAY_SECURITY__MESSAGE_RATE": "0",
        "OCPP_GATEWAY_LOG_LEVEL": "warning",
        **upstream,
    }
    if source is not None:
        env["PYTHONPATH"] = str(source / "python")
    command = [sys.executable, "-m", "ocpp_gateway.cli", "serve", "--host", "127.0.0.1"]
    return _spawn([*command, "--port", str(port)], env, log)


async def start(name: str, csms: CsmsPool, out: Path, before: Path | None = None) -> Setup:
    port = free_port()
    log = out / f"{name}.log"
    kind_name = name.removesuffix("_before")
    source = before if kind_name != name else None
    if kind_name != name and before is None:
        raise SystemExit(f"{name}: pass --before DIR")
    if kind_name == "websocket":
        gateway = _gateway(port, {"OCPP_GATEWAY_UPSTREAM_URL": csms.url(0)}, log, source)
        setup = Setup(name, f"ws://127.0.0.1:{port}/ocpp", gateway)
        pool = [p.pid for p in csms.processes if p.pid is not None]  # all started
        setup.parts = {"gateway": [gateway.pid], "backend": pool}
    else:
        nats_like = kind_name in ("nats", "nats_bare")
        kind, flag = ("nats", "--nats") if nats_like else ("redis_streams", "--redis")
        broker = BrokerServer(kind, log=log)
        await asyncio.to_thread(broker.start)
        assert broker.proc is not None
        server, url = broker.proc, broker.url
        backend = _spawn([sys.executable, str(HERE / "broker_backend.py"), flag, url], {}, log)
        if kind_name in ("nats_bare", "redis_bare"):
            module = kind_name.replace("_bare", "_relay")
            relay = [sys.executable, "-m", f"ocpp_gateway.bench.baselines.{module}"]
            gateway = _spawn([*relay, "--port", str(port), "--upstream", url], {}, log)
        else:
            gateway = _gateway(
                port,
                {"OCPP_GATEWAY_UPSTREAM_TYPE": kind, "OCPP_GATEWAY_UPSTREAM_URL": url},
                log,
                source,
            )
        setup = Setup(name, f"ws://127.0.0.1:{port}/ocpp", gateway, procs=[server, backend])
        setup.parts = {"gateway": [gateway.pid], "broker": [server.pid], "backend": [backend.pid]}
    await wait_tcp_open("127.0.0.1", port, 60.0, lambda: setup.gateway.poll() is None)
    return setup


async def phase(
    loadgen: LoadGenerator, setup: Setup, seconds: float, warmup: float
) -> dict[str, Any]:
    start_at = time.monotonic() + warmup + 0.05
    end_at = start_at + seconds
    task = asyncio.create_task(loadgen.all("closed_loop", start=start_at, end=end_at, drivers=None))
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    before = {part: setup.usage(part) for part in setup.parts}
    await asyncio.sleep(max(0.0, end_at - time.monotonic()))
    after = {part: setup.usage(part) for part in setup.parts}
    answers = await task
    calls = sum(sum(a["by_action"].values()) for a in answers)
    errors = sum(sum(a["errors"].values()) for a in answers)
    result: dict[str, Any] = {"calls": calls, "rate": calls / seconds, "errors": errors}
    for part in setup.parts:
        cpu = after[part].cpu - before[part].cpu
        result[f"{part}_us"] = cpu * 1e6 / calls if calls else float("nan")
    latencies = sorted(x for a in answers for x in a["latencies"])
    result["p50_ms"] = latencies[len(latencies) // 2] * 1000 if latencies else float("nan")
    return result


async def idle_memory(loadgen: LoadGenerator, setup: Setup, count: int) -> dict[str, float]:
    base = {part: setup.usage(part).rss for part in setup.parts}
    fleet = fleet_ids(f"{setup.name}-idle", count, 0.3)
    connected = await loadgen.all("connect", fleet=[(setup.url, *cp) for cp in fleet])
    done = sum(c["connected"] for c in connected)
    await asyncio.sleep(2.0)  # let allocations settle before reading RSS
    result = {
        f"{part}_kb_per_cp": (setup.usage(part).rss - base[part]) / 1024 / max(done, 1)
        for part in setup.parts
    }
    result["connected"] = done
    await loadgen.all("close")
    return result


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    names = [n for n in args.targets.split(",") if n]
    for binary in ("nats-server", "redis-server"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} not found (apt-get install {binary})")
    csms = await CsmsPool.start(1)
    loadgen = LoadGenerator(1, ["127.0.1.1"])
    loadgen.start()
    setups: dict[str, Setup] = {}
    results: dict[str, Any] = {name: {"phases": []} for name in names}
    try:
        for name in names:
            setups[name] = await start(name, csms, out, Path(args.before) if args.before else None)
        for name in names:
            results[name]["idle"] = await idle_memory(loadgen, setups[name], args.idle)
            print(name, "idle", results[name]["idle"], file=sys.stderr)
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                fleet = fleet_ids(f"{name}-{repeat}", args.connections, 0.3)
                await loadgen.all("connect", fleet=[(setups[name].url, *cp) for cp in fleet])
                result = await phase(loadgen, setups[name], args.seconds, args.warmup)
                await loadgen.all("close")
                results[name]["phases"].append(result)
                print(f"{repeat + 1}/{args.repeats} {name:10}", result, file=sys.stderr)
    finally:
        for setup in setups.values():
            setup.stop()
        await loadgen.stop()
        csms.stop()
    return results


def table(results: dict[str, Any]) -> str:
    def med(name: str, key: str) -> float:
        values = [p[key] for p in results[name]["phases"] if key in p]
        return statistics.median(values) if values else float("nan")

    rows = [
        "| upstream | round trips/s | gateway µs/rt | broker µs/rt | backend µs/rt | errors "
        "| gateway KB/idle CP | broker KB/idle CP |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in results:
        idle = results[name].get("idle", {})
        rows.append(
            f"| {name} | {med(name, 'rate'):,.0f} | {med(name, 'gateway_us'):.1f} | "
            f"{med(name, 'broker_us'):.1f} | {med(name, 'backend_us'):.1f} | "
            f"{sum(p['errors'] for p in results[name]['phases'])} | "
            f"{idle.get('gateway_kb_per_cp', float('nan')):.1f} | "
            f"{idle.get('broker_kb_per_cp', float('nan')):.1f} |"
        )
    return "\n".join(rows).replace("nan", "n/a")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--targets", default="websocket,nats,redis")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--idle", type=int, default=2000, help="charge points for idle memory")
    parser.add_argument("--out", default="/tmp/broker-compare")
    parser.add_argument("--before", help="source tree of the `*_before` targets' gateway")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = asyncio.run(measure(args))
    (Path(args.out) / "broker_compare.json").write_text(json.dumps(results, indent=2))
    print(table(results))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
