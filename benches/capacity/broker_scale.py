"""Broker transports at scale: tens of thousands of charge points over several gateway nodes on
one broker, next to the same fleet through the WebSocket upstream, then reconnect storms across
two nodes.

Per target (websocket: the test CSMS pool upstream; nats / redis: one nats-server -js or
redis-server from Debian, with backend services on the `ocpp_gateway.backend` API answering
every CALL), `--nodes` gateway processes (each one node on the broker, with its own port) hold
a fleet ramped in `--steps`, every charge point booted through the whole path. After each step:
memory per charge point (gateway nodes, broker, backends apart), idle CPU, heartbeat round
trips. On a broker, the ownership entries the broker holds are counted against the fleet.

Then a fleet of `--storm` charge points split over nodes 0 and 1:
- swap: every charge point drops and reconnects to the other node at once (each ownership
  changes hands in the broker);
- failover: node 0 is killed (SIGKILL) and its charge points reconnect to node 1.
Reported: seconds until all are booted again, failed attempts by reason, CPU per reconnect of
the gateway nodes and of the broker, and (brokers) a sample of ownership entries checked to name
the node the charge point is on now.

    python benches/capacity/broker_scale.py --steps 10000,25000,50000 --nodes 4 --storm 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ocpp_gateway.bench.loadgen import LoadGenerator
from ocpp_gateway.bench.procs import BrokerServer, ProcessGroup, Usage, usage
from ocpp_gateway.bench.ramp import fleet_ids, ramp
from ocpp_gateway.bench.runner import PER_CSMS, PER_LOADGEN
from ocpp_gateway.bench.summary import merge_connect, merge_storm, per
from ocpp_gateway.bench.targets import CsmsPool, Target, start_target
from ocpp_gateway.transports.broker.contract import identity_token

HERE = Path(__file__).resolve().parent
#: Gateway worker processes per node with the WebSocket upstream (two sockets per charge
#: point under the 20,000-file limit); a broker node holds one socket per charge point.
WEBSOCKET_WORKERS = 2


@dataclass
class Upstream:
    """What the gateway nodes of one target talk to."""

    name: str
    url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    csms: CsmsPool | None = None
    server: subprocess.Popen[bytes] | None = None
    backends: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def parts(self) -> dict[str, Callable[[], Usage]]:
        """The processes measured beside the gateway nodes, by name."""
        if self.csms is not None:
            return {"csms": self.csms.usage}
        server, backends = self.server, self.backends
        assert server is not None
        return {
            "broker": lambda: usage([server.pid]),
            "backend": lambda: usage([p.pid for p in backends]),
        }

    def stop(self) -> None:
        if self.csms is not None:
            self.csms.stop()
        procs = [*self.backends, *([self.server] if self.server else [])]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=sink, start_new_session=True)


async def start_upstream(name: str, peak: int, nodes: int, backends: int, out: Path) -> Upstream:
    """Start the test CSMS pool, or a broker server and its backend services."""
    if name == "websocket":
        hosts = tuple(f"127.0.0.{2 + i}" for i in range(nodes))
        return Upstream(name, csms=await CsmsPool.start(max(1, math.ceil(peak / PER_CSMS)), hosts))
    log = out / f"scale-{name}-broker.log"
    kind, flag = ("nats", "--nats") if name == "nats" else ("redis_streams", "--redis")
    broker = BrokerServer(kind, log=log)
    await asyncio.to_thread(broker.start)
    url = broker.url
    upstream = Upstream(name, url, {"OCPP_GATEWAY_UPSTREAM_TYPE": kind}, server=broker.proc)
    backend = [sys.executable, str(HERE / "broker_backend.py"), flag, url]
    upstream.backends = [_spawn(backend, log) for _ in range(backends)]
    return upstream


def node_id(pid: int) -> str:
    """The node id a gateway process takes on a broker when none is configured."""
    return identity_token(f"{socket.gethostname()}-{pid}")


async def owners(upstream: Upstream, ids: list[str]) -> dict[str, str | None]:
    """The owning node of each charge point, read from the broker itself."""
    found: dict[str, str | None] = {}
    if upstream.name == "nats":
        import nats

        nc = await nats.connect(upstream.url or "")
        try:
            kv = await nc.jetstream().key_value("OCPP_OWNER")
            for cp in ids:
                try:
                    entry = await kv.get(identity_token(cp))
                except nats.js.errors.KeyNotFoundError:
                    found[cp] = None
                    continue
                found[cp] = orjson.loads(entry.value or b"{}").get("node")
        finally:
            await nc.close()
    elif upstream.name == "redis":
        import redis.asyncio as redis

        client = redis.Redis.from_url(upstream.url or "")
        try:
            for cp in ids:
                node = await client.hget(f"ocpp:owner:{identity_token(cp)}", "node")
                found[cp] = node.decode() if isinstance(node, bytes) else node
        finally:
            await client.aclose()
    return found


async def count_owners(upstream: Upstream) -> int | None:
    """How many ownership entries the broker holds (None without a broker)."""
    if upstream.name == "nats":
        import nats

        nc = await nats.connect(upstream.url or "")
        try:
            kv = await nc.jetstream().key_value("OCPP_OWNER")
            try:
                return len(await kv.keys())
            except nats.js.errors.NoKeysError:
                return 0
        finally:
            await nc.close()
    if upstream.name == "redis":
        import redis.asyncio as redis

        client = redis.Redis.from_url(upstream.url or "")
        try:
            return sum([1 async for _ in client.scan_iter("ocpp:owner:*", count=5000)])
        finally:
            await client.aclose()
    return None


async def storm(
    kind: str,
    target: Target,
    upstream: Upstream,
    loadgen: LoadGenerator,
    limit: float,
) -> dict[str, Any]:
    """One reconnect storm across nodes 0 and 1 (`kind`: "swap" or "failover")."""
    first, second = target.urls[0], target.urls[1]
    if kind == "swap":
        move, only = {first: second, second: first}, None
    else:
        victim = target.popen[0]
        for pid in ProcessGroup(victim.pid, "node 0").pids()[::-1]:  # its workers too
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        victim.wait(10)
        move, only = {first: second}, [first]
    parts = upstream.parts()
    before, beside = target.usage(), {name: read() for name, read in parts.items()}
    answers = await loadgen.all("storm", deadline=time.monotonic() + limit, move=move, only=only)
    after = target.usage()
    merged = merge_storm(answers)
    reconnected = merged["booted"]
    result: dict[str, Any] = {
        "kind": kind,
        **merged,
        "gateway_cpu_per_reconnect_us": per((after.cpu - before.cpu) * 1e6, reconnected),
    }
    for name, read in parts.items():
        result[f"{name}_cpu_per_reconnect_us"] = per(
            (read().cpu - beside[name].cpu) * 1e6, reconnected
        )
    return result


async def storms(
    target: Target, upstream: Upstream, loadgen: LoadGenerator, count: int, limit: float
) -> list[dict[str, Any]]:
    """The swap storm, then the failover storm, each followed by the ownership check."""
    fleet = fleet_ids(f"{upstream.name}-storm", count, 0.3)
    on = {cp: i % 2 for i, (cp, _) in enumerate(fleet)}  # node index each charge point is on
    entries = [(target.urls[on[cp]], cp, version) for cp, version in fleet]
    connected = merge_connect(
        await loadgen.run(
            "connect",
            [{"fleet": part, "concurrency": 200, "limit": 60.0} for part in loadgen.split(entries)],
        )
    )
    print(upstream.name, "storm fleet", connected, file=sys.stderr)
    ids = [node_id(p.pid) for p in target.popen[:2]]
    sample = random.Random(7).sample(sorted(on), min(500, len(on)))
    results = []
    for kind in ("swap", "failover"):
        result = await storm(kind, target, upstream, loadgen, limit)
        result["fleet_connected"] = connected["connected"]
        result["fleet_failures"] = connected["failures"]
        on = {cp: (1 - node if kind == "swap" else 1) for cp, node in on.items()}
        if upstream.name != "websocket":
            found = await owners(upstream, sample)
            result["ownership_checked"] = len(sample)
            # No entry: a charge point of the sample that never connected (fleet_failures).
            result["ownership_missing"] = sum(found[cp] is None for cp in sample)
            result["ownership_wrong"] = sum(
                found[cp] is not None and found[cp] != ids[on[cp]] for cp in sample
            )
        results.append(result)
        print(upstream.name, "storm", result, file=sys.stderr)
    await loadgen.all("close")
    return results


async def measure_target(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    steps = [int(s) for s in args.steps.split(",") if s]
    peak = max([*steps, args.storm])
    upstream = await start_upstream(name, peak, args.nodes, args.backends, out)
    loadgen = LoadGenerator(
        max(1, math.ceil(peak / PER_LOADGEN)),
        [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(64)],
    )
    loadgen.start()
    workers = WEBSOCKET_WORKERS if name == "websocket" else 1
    env = {
        "OCPP_GATEWAY_SECURITY__MESSAGE_RATE": "0",
        "OCPP_GATEWAY_LOG_LEVEL": args.log_level,
        **upstream.env,
    }
    result: dict[str, Any] = {
        "layout": {
            "nodes": args.nodes,
            "workers_per_node": workers,
            "backends": len(upstream.backends),
            "loadgen_processes": loadgen.size,
        }
    }
    target: Target | None = None
    try:
        target = await start_target(
            "gateway",
            upstream.csms,
            instances=args.nodes,
            workers=workers,
            log=out / f"scale-{name}-gateway.log",
            env=env,
            upstream=upstream.url,
        )
        await asyncio.sleep(args.settle)
        result.update(
            await ramp(
                target,
                loadgen,
                steps,
                prefix=f"{name}-x",
                share_201=0.3,
                settle=args.settle,
                sample_heartbeats=args.heartbeats,
                spread=2.0,
                note=lambda text: print(text, file=sys.stderr),
                beside=upstream.parts(),
            )
        )
        result["owners_in_broker"] = await count_owners(upstream)
        for step in result["steps"]:
            print(name, {k: v for k, v in step.items() if k != "heartbeat_ms"}, file=sys.stderr)
        await loadgen.all("close")
        if args.storm:
            result["storms"] = await storms(target, upstream, loadgen, args.storm, args.timeout)
    finally:
        if target is not None:
            target.stop()
        await loadgen.stop()
        upstream.stop()
    return result


def tables(results: dict[str, Any]) -> str:
    """The markdown tables of benches/README.md."""
    rows = [
        "| upstream | charge points | gateway KB/CP | broker KB/CP | backend KB/CP "
        "| gateway idle µs/CP·s | heartbeat p50 / p99 ms | connects/s | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        for step in result["steps"]:
            hb = step["heartbeat_ms"]
            rows.append(
                f"| {name} | {step['connected']:,} | {step['per_cp'] / 1024:.1f} | "
                f"{step.get('broker_per_cp', float('nan')) / 1024:.1f} | "
                f"{step.get('backend_per_cp', float('nan')) / 1024:.1f} | "
                f"{step['idle_cpu_us_per_cp_s']:.2f} | {hb.get('p50', float('nan')):.1f} / "
                f"{hb.get('p99', float('nan')):.1f} | {step['connect_rate']:,.0f} | "
                f"{sum(step['failures'].values())} |"
            )
    rows += [
        "",
        "| upstream | storm | charge points | back | seconds | failed attempts "
        "| gateway µs/reconnect | broker µs/reconnect | owner on another node |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, result in results.items():
        for s in result.get("storms", []):
            failed = ", ".join(f"{k} {v}" for k, v in s["refused"].items()) or "0"
            wrong = (
                f"{s['ownership_wrong']} of {s['ownership_checked']}"
                if "ownership_checked" in s
                else "n/a"
            )
            rows.append(
                f"| {name} | {s['kind']} | {s['charge_points']:,} | {s['booted']:,} | "
                f"{s['seconds']:.1f} | {failed} | {s['gateway_cpu_per_reconnect_us']:.0f} | "
                f"{s.get('broker_cpu_per_reconnect_us', float('nan')):.0f} | {wrong} |"
            )
    return "\n".join(rows).replace(" nan ", " n/a ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--targets", default="websocket,nats,redis")
    parser.add_argument("--steps", default="10000,25000,50000")
    parser.add_argument("--nodes", type=int, default=4, help="gateway processes (nodes)")
    parser.add_argument("--backends", type=int, default=2, help="backend services per broker")
    parser.add_argument("--storm", type=int, default=10000, help="charge points per storm")
    parser.add_argument("--timeout", type=float, default=180.0, help="storm deadline (s)")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--heartbeats", type=int, default=2000)
    parser.add_argument("--log-level", default="warning", help="of the gateway nodes")
    parser.add_argument("--out", default="/tmp/broker-scale")
    args = parser.parse_args()
    if args.nodes < 2:
        parser.error("--nodes: at least 2 (the storms move charge points between nodes)")
    for binary in ("nats-server", "redis-server"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} not found (apt-get install {binary})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    started = time.monotonic()
    for name in [n for n in args.targets.split(",") if n]:
        results[name] = asyncio.run(measure_target(name, args, out))
        (out / "broker_scale.json").write_text(json.dumps(results, indent=2))
    print(tables(results))
    print(f"\n{time.monotonic() - started:.0f} s, load average {os.getloadavg()[0]:.2f}")
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
