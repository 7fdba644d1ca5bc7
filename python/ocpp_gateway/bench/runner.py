"""The capacity-planning run: scenarios against the gateway and its baselines, in one run.

Per target (gateway, bare relay, ocpp-library relay, direct): resident memory per idle charge
point, sustained closed-loop round trips per second with the CPU each costs, CPU per round trip
by action, latency at a fixed paced rate (half the gateway's measured maximum; the gateway's
added latency is its figure minus the direct path's), and a reconnect storm. Then connection
scaling of the gateway and the bare relay in steps up to tens of thousands of charge points.
Every CPU figure comes from the processes' own accounting (/proc utime + stime), which stays
meaningful on a shared machine where wall-clock rates do not.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ocpp_gateway.bench.frames import V16, V201
from ocpp_gateway.bench.loadgen import LoadGenerator
from ocpp_gateway.bench.procs import Usage, usage
from ocpp_gateway.bench.targets import LABELS, TARGETS, CsmsPool, Target, start_target

#: Actions timed one by one for "CPU per round trip by action", per version.
__all__ = [
    "Run",
    "Settings",
    "fleet_ids",
    "idle_cpu",
    "machine",
    "merge_connect",
    "merge_storm",
    "per",
    "percentiles",
    "ramp",
    "settings_for",
    "summarize",
    "summarize_phase",
]


ACTIONS: dict[str, tuple[str, ...]] = {
    V16: (
        "Heartbeat",
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
        "BootNotification",
    ),
    V201: ("Heartbeat", "StatusNotification", "Authorize", "TransactionEvent", "BootNotification"),
}

#: Largest number of charge points one relay instance serves in a scaling run (ephemeral ports
#: from one address to one CSMS address number about 28,000 on this kernel).
PER_INSTANCE = 20_000
#: Charge points per gateway worker in a scaling run (two sockets each under a 20,000-file limit).
PER_WORKER = 7_000
#: Charge points per load-generator process and per CSMS process.
PER_LOADGEN = 12_500
PER_CSMS = 14_000


@dataclass(frozen=True)
class Settings:
    """Sizes and durations of one run; `smoke()` and `full()` are the two presets."""

    mode: str
    charge_points: int  # fleet held open per target (memory, throughput, paced)
    drivers: int  # connections sending in the closed-loop and paced phases
    share_201: float  # fraction of the fleet speaking 2.0.1 (the rest 1.6)
    warmup: float
    seconds: float  # measured seconds of the closed-loop and paced phases
    action_seconds: float  # measured seconds per action
    storm_charge_points: int
    storm_timeout: float
    profile: str  # simulator profile of the "simulated fleet" scenario (without version suffix)
    profile_charge_points: int
    profile_seconds: float
    scale_steps: tuple[int, ...]
    scale_targets: tuple[str, ...]
    sample_heartbeats: int
    settle: float
    loadgen_processes: int
    csms_processes: int
    targets: tuple[str, ...] = TARGETS
    gateway_config: str | None = None
    baselines: str | None = None  # directory of the baseline relays (found when None)

    @classmethod
    def smoke(cls) -> Settings:
        """A tiny fleet for seconds: every scenario and baseline, for CI."""
        return cls(
            mode="smoke",
            charge_points=16,
            drivers=8,
            share_201=0.5,
            warmup=0.1,
            seconds=0.5,
            action_seconds=0.15,
            storm_charge_points=16,
            storm_timeout=20.0,
            profile="busy",
            profile_charge_points=16,
            profile_seconds=1.0,
            scale_steps=(8, 24),
            scale_targets=("gateway", "bare_relay"),
            sample_heartbeats=8,
            settle=0.2,
            loadgen_processes=1,
            csms_processes=1,
        )

    @classmethod
    def full(cls) -> Settings:
        """The capacity run: about 20 minutes on a 2-core machine."""
        return cls(
            mode="full",
            charge_points=2_000,
            drivers=100,
            share_201=0.3,
            warmup=2.0,
            seconds=10.0,
            action_seconds=3.0,
            storm_charge_points=5_000,
            storm_timeout=120.0,
            profile="busy",
            profile_charge_points=2_000,
            profile_seconds=15.0,
            scale_steps=(1_000, 5_000, 10_000, 20_000, 35_000, 50_000),
            scale_targets=("gateway", "bare_relay"),
            sample_heartbeats=1_000,
            settle=2.0,
            loadgen_processes=2,
            csms_processes=1,
        )


def fleet_ids(prefix: str, count: int, share_201: float, start: int = 0) -> list[tuple[str, str]]:
    """Charge point ids with their subprotocol, 2.0.1 spread evenly through the fleet.

    Args:
        prefix: id prefix (keeps runs against different targets apart).
        count: how many.
        share_201: fraction speaking ocpp2.0.1.
        start: index of the first one.

    Returns:
        (charge point id, subprotocol) pairs.
    """
    fleet = []
    for index in range(start, start + count):
        speaks_201 = math.floor((index + 1) * share_201) > math.floor(index * share_201)
        fleet.append((f"{prefix}-{index:06d}", V201 if speaks_201 else V16))
    return fleet


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


def machine() -> dict[str, Any]:
    """Facts about the machine the run happened on.

    Returns:
        nproc, CPU model, kernel, Python, memory and the open-files limit.
    """
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = 0
    try:
        with open("/proc/meminfo") as meminfo:
            memory = int(meminfo.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "memory_bytes": memory,
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
    }


class Run:
    """One benchmark run: owns the CSMS pool and load generator, collects the report."""

    def __init__(self, settings: Settings, out: Path, console: Console | None = None) -> None:
        """Args:
        settings: sizes and durations.
        out: directory for the report, plots and target logs.
        console: where progress goes; a quiet console when None.
        """
        self.settings = settings
        self.out = out
        self.console = console or Console(quiet=True)
        self.report: dict[str, Any] = {
            "meta": {"machine": machine(), "settings": asdict(settings)},
            "targets": {},
            "scaling": {},
            "notes": [],
        }
        self._progress: Progress | None = None

    # ----------------------------------------------------------------- helpers

    def note(self, text: str) -> None:
        """Add a remark to the report (and show it)."""
        self.report["notes"].append(text)
        self.console.log(text)

    async def _phase(
        self,
        loadgen: LoadGenerator,
        target: Target,
        csms: CsmsPool,
        command: str,
        seconds: float,
        **arguments: Any,
    ) -> dict[str, Any]:
        """Run a timed load phase and measure the target, CSMS and load generator CPU."""
        settings = self.settings
        now = time.monotonic()
        start = now + settings.warmup + 0.05
        end = start + seconds
        arguments = {**arguments, "start": start, "end": end}
        task = asyncio.create_task(loadgen.all(command, **arguments))
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        before, csms_before = target.usage(), csms.usage()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        after, csms_after = target.usage(), csms.usage()
        answers = await task
        return summarize_phase(answers, before, after, csms_before, csms_after, seconds)

    # ---------------------------------------------------------------- per target

    async def _start(self, name: str, csms: CsmsPool) -> Target:
        settings = self.settings
        config = Path(settings.gateway_config) if settings.gateway_config else None
        return await start_target(
            name,
            csms,
            config=config if name == "gateway" else None,
            log=self.out / f"{name}.log",
            baselines=Path(settings.baselines) if settings.baselines else None,
        )

    async def measure_target(
        self, target: Target, csms: CsmsPool, loadgen: LoadGenerator, advance: Callable[[], None]
    ) -> dict[str, Any]:
        """Memory, throughput and CPU by action for one target."""
        settings = self.settings
        name = target.name
        result: dict[str, Any] = {"label": LABELS[name]}
        base = target.usage()
        fleet = fleet_ids(f"{name}-m", settings.charge_points, settings.share_201)
        url = target.urls[0]
        connected = await loadgen.run(
            "connect",
            [{"fleet": [(url, *cp) for cp in part]} for part in loadgen.split(fleet)],
        )
        result["connect"] = merge_connect(connected)
        await asyncio.sleep(settings.settle)
        idle = target.usage()
        result["memory"] = {
            "base_rss": base.rss,
            "idle_rss": idle.rss,
            "charge_points": result["connect"]["connected"],
            "idle_per_cp": per(idle.rss - base.rss, result["connect"]["connected"]),
            "processes": target.processes(),
        }
        advance()
        drivers = max(1, settings.drivers // loadgen.size)
        result["throughput"] = await self._phase(
            loadgen, target, csms, "closed_loop", settings.seconds, drivers=drivers
        )
        loaded = target.usage()
        result["memory"]["load_rss"] = loaded.rss
        result["memory"]["load_per_cp"] = per(loaded.rss - base.rss, result["connect"]["connected"])
        advance()
        by_action: dict[str, Any] = {}
        # The direct path has no relay whose CPU could be attributed to an action.
        for version, actions in ACTIONS.items() if name != "direct" else ():
            # Only the connections of that version drive, so each phase is one action.
            for action in actions:
                phase = await self._phase(
                    loadgen,
                    target,
                    csms,
                    "closed_loop",
                    settings.action_seconds,
                    drivers=drivers,
                    actions=[action],
                    version=version,
                )
                by_action[f"{action} ({'1.6' if version == V16 else '2.0.1'})"] = phase
        result["actions"] = by_action
        advance()
        await loadgen.all("close")
        return result

    async def paced(
        self, target: Target, csms: CsmsPool, loadgen: LoadGenerator, rate: float
    ) -> dict[str, Any]:
        """Latency of one target at a fixed offered rate (open loop)."""
        settings = self.settings
        name = target.name
        fleet = fleet_ids(f"{name}-p", settings.drivers, settings.share_201)
        url = target.urls[0]
        await loadgen.run(
            "connect",
            [{"fleet": [(url, *cp) for cp in part]} for part in loadgen.split(fleet)],
        )
        phase = await self._phase(
            loadgen, target, csms, "paced", settings.seconds, rate=rate / loadgen.size
        )
        phase["offered_rate"] = rate
        await loadgen.all("close")
        return phase

    async def simulated(
        self, target: Target, csms: CsmsPool, loadgen: LoadGenerator
    ) -> dict[str, Any]:
        """The package's simulator drives a 1.6 + 2.0.1 fleet through the target at its pace.

        Unlike the closed-loop phases, this is the traffic of real charge points (the profile's
        heartbeats, status changes, transactions and meter samples, with CSMS answers flowing
        back), so its CPU per round trip is the figure closest to production.
        """
        settings = self.settings
        url = target.urls[0]
        half = settings.profile_charge_points // 2
        booted = 0
        for version, count in (("1.6", half), ("2.0.1", settings.profile_charge_points - half)):
            ids = [f"{target.name}-f{version}-{i:06d}" for i in range(count)]
            answers = await loadgen.run(
                "fleet_start",
                [
                    {
                        "url": url,
                        "charge_point_ids": part,
                        "profile": f"{settings.profile}-{version}",
                        "ramp_seconds": 0.0 if settings.mode == "smoke" else 5.0,
                    }
                    for part in loadgen.split(ids)
                ],
            )
            booted += sum(a["booted"] for a in answers)
        now = time.monotonic()
        start, end = now + settings.warmup + 0.05, now + settings.warmup + 0.05
        end += settings.profile_seconds
        task = asyncio.create_task(loadgen.all("fleet_measure", start=start, end=end))
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        before, csms_before = target.usage(), csms.usage()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        after, csms_after = target.usage(), csms.usage()
        answers = await task
        by_action: dict[str, int] = {}
        errors: dict[str, int] = {}
        for answer in answers:
            for action, count in answer["answered"].items():
                by_action[action] = by_action.get(action, 0) + count
            for action, count in answer["errors"].items():
                errors[action] = errors.get(action, 0) + count
        calls = sum(by_action.values())
        worst: dict[str, float] = {}
        for answer in answers:
            for key, value in answer["latency_ms"].items():
                worst[key] = max(worst.get(key, 0.0), value)
        return {
            "profile": settings.profile,
            "charge_points": settings.profile_charge_points,
            "booted": booted,
            "seconds": settings.profile_seconds,
            "calls": calls,
            "rate": per(calls, settings.profile_seconds),
            "by_action": by_action,
            "errors": errors,
            "timeouts": sum(sum(a["timeouts"].values()) for a in answers),
            "latency_ms": worst,
            "target_cpu": after.cpu - before.cpu,
            "cpu_per_rt_us": per((after.cpu - before.cpu) * 1e6, calls),
            "csms_cpu": csms_after.cpu - csms_before.cpu,
            "loadgen_cpu": sum(a["cpu"] for a in answers),
        }

    async def storm(self, target: Target, loadgen: LoadGenerator) -> dict[str, Any]:
        """Every charge point drops and reconnects at once; time until all booted again."""
        settings = self.settings
        name = target.name
        fleet = fleet_ids(f"{name}-s", settings.storm_charge_points, settings.share_201)
        url = target.urls[0]
        connected = merge_connect(
            await loadgen.run(
                "connect",
                [
                    {"fleet": [(url, *cp) for cp in part], "concurrency": 200}
                    for part in loadgen.split(fleet)
                ],
            )
        )
        before = target.usage()
        answers = await loadgen.all("storm", deadline=time.monotonic() + settings.storm_timeout)
        after = target.usage()
        merged = merge_storm(answers)
        result = {
            **merged,
            "charge_points": connected["connected"],
            "target_cpu": after.cpu - before.cpu,
            "cpu_per_handshake_us": per((after.cpu - before.cpu) * 1e6, merged["booted"]),
        }
        await loadgen.all("close")
        return result

    # ------------------------------------------------------------------ scaling

    async def scaling(self, name: str, advance: Callable[[], None]) -> dict[str, Any]:
        """Ramp one target in steps, with enough workers, CSMS and load-generator processes."""
        settings = self.settings
        peak = max(settings.scale_steps)
        instances = max(1, math.ceil(peak / PER_INSTANCE))
        workers = max(1, math.ceil(peak / instances / PER_WORKER))
        hosts = tuple(f"127.0.0.{2 + i}" for i in range(instances))
        csms = await CsmsPool.start(max(1, math.ceil(peak / PER_CSMS)), hosts)
        loadgen = LoadGenerator(
            max(1, math.ceil(peak / PER_LOADGEN)),
            [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(64)],
        )
        loadgen.start()
        config = Path(settings.gateway_config) if settings.gateway_config else None
        layout = {
            "instances": instances,
            "workers_per_instance": workers,
            "csms_processes": len(csms.processes),
            "loadgen_processes": loadgen.size,
        }
        result: dict[str, Any] = {"layout": layout, "steps": [], "reached": 0}
        target: Target | None = None
        try:
            target = await start_target(
                name,
                csms,
                instances=instances,
                workers=workers,
                config=config if name == "gateway" else None,
                log=self.out / f"{name}-scaling.log",
                baselines=Path(self.settings.baselines) if self.settings.baselines else None,
            )
            await asyncio.sleep(settings.settle)
            result.update(
                await ramp(
                    target,
                    loadgen,
                    settings.scale_steps,
                    prefix=f"{name}-x",
                    share_201=settings.share_201,
                    settle=settings.settle,
                    sample_heartbeats=settings.sample_heartbeats,
                    spread=2.0 if settings.mode == "full" else 0.2,
                    advance=advance,
                    note=self.note,
                )
            )
            await loadgen.all("close")
        finally:
            if target is not None:
                target.stop()
            await loadgen.stop()
            csms.stop()
        return result

    # --------------------------------------------------------------------- all

    async def run(self) -> dict[str, Any]:
        """Run every scenario and return the report (also kept in `self.report`).

        Returns:
            The report mapping (JSON-serialisable).
        """
        settings = self.settings
        self.out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        per_target_steps = 3 + 1 + 1 + 1
        total = len(settings.targets) * per_target_steps + sum(
            len(settings.scale_steps) for _ in settings.scale_targets
        )
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        with progress:
            task = progress.add_task("capacity run", total=total)

            def advance(description: str | None = None) -> None:
                progress.advance(task)
                if description:
                    progress.update(task, description=description)

            csms = await CsmsPool.start(settings.csms_processes)
            loadgen = LoadGenerator(
                settings.loadgen_processes,
                [f"127.0.1.{1 + i}" for i in range(settings.loadgen_processes)],
            )
            loadgen.start()
            running: dict[str, Target] = {}
            try:
                started_targets = await asyncio.gather(
                    *(self._start(name, csms) for name in settings.targets),
                    return_exceptions=True,
                )
                for name, outcome in zip(settings.targets, started_targets, strict=True):
                    if isinstance(outcome, BaseException):
                        self.note(f"{name} did not start: {outcome!r}; see {name}.log")
                    else:
                        running[name] = outcome
                for name, target in running.items():
                    progress.update(task, description=f"{name}: memory, throughput, actions")
                    self.report["targets"][name] = await self.measure_target(
                        target, csms, loadgen, advance
                    )
                gateway_max = (
                    self.report["targets"].get("gateway", {}).get("throughput", {}).get("rate")
                )
                rates = [
                    t["throughput"]["rate"]
                    for t in self.report["targets"].values()
                    if t.get("throughput", {}).get("rate")
                ]
                rate = 0.5 * (gateway_max or (min(rates) if rates else 100.0))
                self.report["paced_rate"] = rate
                for name, target in running.items():
                    progress.update(task, description=f"{name}: paced latency at {rate:.0f}/s")
                    self.report["targets"][name]["paced"] = await self.paced(
                        target, csms, loadgen, rate
                    )
                    advance()
                for name, target in running.items():
                    progress.update(task, description=f"{name}: simulated fleet")
                    self.report["targets"][name]["simulated"] = await self.simulated(
                        target, csms, loadgen
                    )
                    advance()
                for name, target in running.items():
                    progress.update(task, description=f"{name}: reconnect storm")
                    self.report["targets"][name]["storm"] = await self.storm(target, loadgen)
                    advance()
            finally:
                for target in running.values():
                    target.stop()
                await loadgen.stop()
                csms.stop()
            for name in settings.scale_targets:
                progress.update(task, description=f"{name}: connection scaling")
                self.report["scaling"][name] = await self.scaling(name, advance)
        self.report["meta"]["seconds"] = time.monotonic() - started
        self.report["summary"] = summarize(self.report)
        return self.report


async def ramp(
    target: Target,
    loadgen: LoadGenerator,
    steps: Sequence[int],
    *,
    prefix: str,
    share_201: float,
    settle: float,
    sample_heartbeats: int,
    spread: float,
    advance: Callable[[], None] = lambda: None,
    note: Callable[[str], None] = lambda text: None,
    beside: Mapping[str, Callable[[], Usage]] | None = None,
) -> dict[str, Any]:
    """Connect (and boot) a fleet onto a running target in steps; after each, the memory held
    per charge point, the CPU of holding them idle and a sample of heartbeat round trips.

    Stops early when the target dies or more than 1 % of a step's connections fail.

    Args:
        target: the system under test; charge points are dealt round-robin over its URLs.
        loadgen: the started load generator.
        steps: fleet sizes to reach, ascending.
        prefix: charge point id prefix.
        share_201: fraction of the fleet speaking 2.0.1.
        settle: seconds to wait after a step before reading memory and CPU.
        sample_heartbeats: heartbeats sent over the whole fleet after each step.
        spread: seconds over which they are spread.
        advance: called after each step (progress).
        note: receives a line when the ramp stops early.
        beside: other processes measured the same way (a broker, a backend), by name: their
            RSS, RSS per charge point and idle CPU go into each step's record with the name
            as prefix.

    Returns:
        {"steps": [...one record per step], "reached": charge points held, "base_rss"}.
    """
    parts = dict(beside or {})
    base = target.usage()
    base_beside = {name: read() for name, read in parts.items()}
    loadgen_base = usage(loadgen.pids)
    records: list[dict[str, Any]] = []
    result: dict[str, Any] = {"steps": records, "reached": 0, "base_rss": base.rss}
    held = 0
    for step in steps:
        fresh = fleet_ids(prefix, step - held, share_201, start=held)
        urls = target.urls
        entries = [(urls[(held + i) % len(urls)], *cp) for i, cp in enumerate(fresh)]
        started = time.monotonic()
        connect = merge_connect(
            await loadgen.run(
                "connect",
                [
                    {"fleet": part, "concurrency": 100, "limit": 60.0}
                    for part in loadgen.split(entries)
                ],
            )
        )
        ramp_seconds = time.monotonic() - started
        settled = target.usage()
        settled_beside = {name: read() for name, read in parts.items()}
        await asyncio.sleep(settle)
        now = target.usage()
        held = connect["total"]
        sample = await loadgen.all(
            "sample", count=max(1, sample_heartbeats // loadgen.size), spread=spread
        )
        latencies = [x for answer in sample for x in answer["latencies"]]
        loadgen_now = usage(loadgen.pids)
        record = {
            "charge_points": step,
            "connected": held,
            "failures": connect["failures"],
            "ramp_seconds": ramp_seconds,
            "connect_rate": per(connect["connected"], ramp_seconds),
            "rss": now.rss,
            "per_cp": per(now.rss - base.rss, held),
            # CPU of holding idle connections (pings, timers), per charge point-second.
            "idle_cpu_us_per_cp_s": idle_cpu(settled, now, held),
            "processes": target.processes(),
            "heartbeat_ms": percentiles(latencies),
            "heartbeat_failed": sum(a["failed"] for a in sample),
            "loadgen_rss_per_cp": per(loadgen_now.rss - loadgen_base.rss, held),
            "target_alive": target.alive(),
        }
        for name, read in parts.items():
            current = read()
            record[f"{name}_rss"] = current.rss
            record[f"{name}_per_cp"] = per(current.rss - base_beside[name].rss, held)
            record[f"{name}_idle_cpu_us_per_cp_s"] = idle_cpu(settled_beside[name], current, held)
        records.append(record)
        result["reached"] = held
        advance()
        lost = sum(connect["failures"].values())
        wanted = len(fresh)
        if not target.alive() or lost > max(5, 0.01 * wanted):
            note(
                f"{target.name} scaling stopped at step {step}: {lost} connections failed "
                f"({connect['failures']}), target alive: {target.alive()}"
            )
            break
    return result


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


def settings_for(mode: str, **changes: Any) -> Settings:
    """A preset with some fields changed.

    Args:
        mode: "smoke" or "full".
        **changes: fields of `Settings` to override (None values are ignored).

    Returns:
        The settings.

    Raises:
        ValueError: unknown mode.
    """
    if mode == "smoke":
        base = Settings.smoke()
    elif mode == "full":
        base = Settings.full()
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return replace(base, **{k: v for k, v in changes.items() if v is not None})
