"""Systems under test of the benchmarks: the gateway, the baseline relays, and the test CSMS.

Each target is started as its own processes on loopback and measured through /proc as a process
group (the root process and its workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from pathlib import Path

from ocpp_gateway.bench.csms import start_csms
from ocpp_gateway.bench.procs import ProcessGroup, Usage, free_port, usage, wait_tcp_open

#: Targets in the order they are reported; "direct" is the fleet talking to the CSMS itself.
__all__ = [
    "PACKAGED_BASELINES",
    "BaselinesNotFound",
    "CsmsPool",
    "Target",
    "find_baselines",
    "start_target",
]


TARGETS = ("gateway", "bare_relay", "ocpp_lib_relay", "direct")

LABELS = {
    "gateway": "ocpp-gateway (Rust validation, enforce)",
    "bare_relay": "bare aiohttp relay (no validation)",
    "ocpp_lib_relay": "relay validating with the ocpp library",
    "direct": "direct to the test CSMS (no relay)",
}


#: The baseline programs a run needs, by target name.
BASELINE_TARGETS = ("bare_relay", "ocpp_lib_relay")


class BaselinesNotFound(FileNotFoundError):
    """A directory given for the baseline relays does not hold them."""


#: Where the baseline relays ship: `ocpp_gateway/bench/baselines/` of the installed package.
PACKAGED_BASELINES = Path(__file__).resolve().parent / "baselines"


def _holds_baselines(folder: Path) -> bool:
    return all((folder / f"{name}.py").is_file() for name in BASELINE_TARGETS)


def find_baselines(explicit: Path | None = None) -> Path:
    """The directory of the baseline relays (`bare_relay.py`, `ocpp_lib_relay.py`).

    They ship in the package (`PACKAGED_BASELINES`); `explicit` (the `--baselines` option) or
    `$OCPP_BENCH_BASELINES` name another directory, e.g. modified copies to compare with.

    Args:
        explicit: a directory given by the user; when set, it is the only place looked at.

    Returns:
        The directory.

    Raises:
        BaselinesNotFound: the directory named does not hold both programs.
    """
    names = " and ".join(f"{n}.py" for n in BASELINE_TARGETS)
    if explicit is not None:
        if _holds_baselines(explicit):
            return explicit
        raise BaselinesNotFound(
            f"--baselines {explicit}: no {names} there (leave the option out to use the "
            f"relays of the package, {PACKAGED_BASELINES})"
        )
    configured = os.environ.get("OCPP_BENCH_BASELINES")
    if configured:
        if _holds_baselines(Path(configured)):
            return Path(configured)
        raise BaselinesNotFound(
            f"OCPP_BENCH_BASELINES={configured}: no {names} there; unset it to use the relays "
            f"of the package, or pass --baselines DIR"
        )
    return PACKAGED_BASELINES


@dataclass
class CsmsPool:
    """The test CSMS: processes sharing one port on one or more loopback addresses."""

    hosts: tuple[str, ...]
    port: int
    processes: list[SpawnProcess] = field(default_factory=list)

    @classmethod
    async def start(cls, processes: int, hosts: tuple[str, ...] = ("127.0.0.1",)) -> CsmsPool:
        """Start the pool and wait until it accepts connections.

        Args:
            processes: how many CSMS processes.
            hosts: loopback addresses to listen on (several let relays exceed one address's
                ephemeral ports towards the CSMS).

        Returns:
            The running pool.
        """
        port = free_port(hosts[0])
        pool = cls(hosts, port, start_csms(hosts, port, processes))
        for host in hosts:
            await wait_tcp_open(host, port, 30.0)
        return pool

    def url(self, index: int = 0) -> str:
        """The base URL charge points (or relays) use: ws://HOST:PORT/ocpp.

        Args:
            index: which listening address, cycled.

        Returns:
            The URL.
        """
        return f"ws://{self.hosts[index % len(self.hosts)]}:{self.port}/ocpp"

    def usage(self) -> Usage:
        """CPU and RSS of the CSMS processes."""
        return usage([p.pid for p in self.processes if p.pid is not None])

    def stop(self) -> None:
        """Terminate the CSMS processes."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(10.0)
            if process.is_alive():
                process.kill()


@dataclass
class Target:
    """One system under test: some relay instances (each maybe with workers), or direct."""

    name: str
    urls: list[str]
    popen: list[subprocess.Popen[bytes]]

    def groups(self) -> list[ProcessGroup]:
        """The process groups to measure (one per instance)."""
        return [ProcessGroup(p.pid, self.name) for p in self.popen]

    def usage(self) -> Usage:
        """Summed CPU and RSS of every process of the target (zero for direct)."""
        pids = [pid for group in self.groups() for pid in group.pids()]
        return usage(pids)

    def processes(self) -> int:
        """Number of live processes in the target."""
        return sum(len(group.pids()) for group in self.groups())

    def alive(self) -> bool:
        """True while every root process of the target runs."""
        return all(p.poll() is None for p in self.popen)

    def stop(self) -> None:
        """Stop every instance (SIGTERM, then SIGKILL after 15 s)."""
        for process in self.popen:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.popen:
            try:
                process.wait(15.0)
            except subprocess.TimeoutExpired:
                for pid in ProcessGroup(process.pid, self.name).pids()[::-1]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.wait(5.0)


def _command(
    name: str, port: int, upstream: str, workers: int, config: Path | None, baselines: Path | None
) -> list[str]:
    if name == "gateway":
        command = [
            sys.executable,
            "-c",
            "import sys; from ocpp_gateway.cli import main; sys.exit(main(sys.argv[1:]))",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--upstream",
            upstream,
            "--workers",
            str(workers),
        ]
        if config is not None:
            command += ["--config", str(config)]
        return command
    script = (baselines or find_baselines()) / f"{name}.py"
    return [
        sys.executable,
        str(script),
        "--port",
        str(port),
        "--upstream",
        upstream,
        "--workers",
        str(workers),
    ]


async def start_target(
    name: str,
    csms: CsmsPool | None,
    *,
    instances: int = 1,
    workers: int = 1,
    config: Path | None = None,
    log: Path | None = None,
    baselines: Path | None = None,
    source: Path | None = None,
    env: Mapping[str, str] | None = None,
    upstream: str | None = None,
) -> Target:
    """Start a system under test in front of the CSMS pool and wait until it listens.

    Args:
        name: one of `TARGETS`.
        csms: the upstream test CSMS (None when `upstream` is given).
        instances: separate relay instances, each on its own port and with its own upstream
            address (instance i uses the CSMS's i-th address), so that together they can hold
            more upstream sockets than one address's ephemeral port range.
        workers: worker processes per instance (`--workers`).
        config: gateway TOML file (gateway only).
        log: file receiving the target's stdout and stderr.
        baselines: directory of the baseline relays (`find_baselines()` when None).
        source: run the gateway from this source tree's `python/` directory (with its built
            extension) instead of the installed package, e.g. an older commit to compare with.
        env: extra environment of the target's processes (gateway settings as
            `OCPP_GATEWAY_*` variables, for A/B runs of a setting).
        upstream: one upstream URL for every instance instead of the CSMS pool's addresses
            (a broker, with `OCPP_GATEWAY_UPSTREAM_TYPE` in `env`).

    Returns:
        The running target.

    Raises:
        BaselinesNotFound: a baseline target and no directory holding it.
        TimeoutError: the target did not open its port within 60 s.
        ValueError: unknown target name.
    """
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    if csms is None:
        if upstream is None or name == "direct":
            raise ValueError(f"{name}: neither a CSMS pool nor an upstream URL")
    elif name == "direct":
        return Target(name, [csms.url(i) for i in range(len(csms.hosts))], [])
    popen: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for index in range(instances):
            port = free_port()
            url = upstream or (csms.url(index) if csms is not None else "")
            command = _command(name, port, url, workers, config, baselines)
            extra = {}
            if name == "gateway" and config is None:
                # Closed-loop phases send far more than a real charger: lift the frame rate limit.
                extra["OCPP_GATEWAY_SECURITY__MESSAGE_RATE"] = "0"
            if name == "gateway" and source is not None:
                extra["PYTHONPATH"] = str(source / "python")
            extra.update(env or {})
            popen.append(_spawn(command, log, extra))
            urls.append(f"ws://127.0.0.1:{port}/ocpp")
        for url, process in zip(urls, popen, strict=True):
            port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
            await wait_tcp_open("127.0.0.1", port, 60.0, _running(process))
    except BaseException:
        Target(name, urls, popen).stop()
        raise
    return Target(name, urls, popen)


def _running(process: subprocess.Popen[bytes]) -> Callable[[], bool]:
    def alive() -> bool:
        return process.poll() is None

    return alive


def _spawn(command: list[str], log: Path | None, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **extra)
    env.setdefault("OCPP_GATEWAY_LOG_LEVEL", "warning")
    if log is None:
        return subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    with open(log, "ab") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=sink, env=env, start_new_session=True)
