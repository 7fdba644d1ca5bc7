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
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ocpp_gateway.bench.frames import V16, V201
from ocpp_gateway.bench.loadgen import LoadGenerator
from ocpp_gateway.bench.ramp import fleet_ids, ramp
from ocpp_gateway.bench.summary import (
    merge_connect,
    merge_storm,
    per,
    summarize,
    summarize_phase,
)
from ocpp_gateway.bench.targets import LABELS, TARGETS, CsmsPool, Target, start_target

#: Actions timed one by one for "CPU per round trip by action", per version.
__all__ = ["Run", "Settings", "machine", "settings_for"]


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

    async def interleaved_closed_loop(
        self,
        loadgen: LoadGenerator,
        csms: CsmsPool,
        targets: Mapping[str, Target],
        repeats: int,
        connections: int,
        seconds: float,
    ) -> dict[str, list[dict[str, Any]]]:
        """Closed-loop phases against several running targets, the order rotating every
        repetition so that a slow spell of a shared machine falls on each in turn.

        Args:
            loadgen: the started load generator.
            csms: the test CSMS the targets relay to.
            targets: the running targets, by name.
            repeats: repetitions (one phase per target each).
            connections: charge points driving the closed loop.
            seconds: measured seconds per phase.

        Returns:
            Each target's phase figures (`summarize_phase`), one per repetition.
        """
        names = list(targets)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for repeat in range(repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                target = targets[name]
                fleet = fleet_ids(f"{name}-{repeat}", connections, 0.3)
                await loadgen.all("connect", fleet=[(target.urls[0], *cp) for cp in fleet])
                phase = await self._phase(
                    loadgen, target, csms, "closed_loop", seconds, drivers=connections
                )
                await loadgen.all("close")
                results[name].append(phase)
                self.console.log(  # progress, not a remark of the report
                    f"{repeat + 1}/{repeats} {name:20} {phase['cpu_per_rt_us']:7.1f} µs/rt "
                    f"{phase['rate']:8.0f} rt/s errors {phase['errors']}"
                )
        return results

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
