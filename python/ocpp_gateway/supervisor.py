"""The `--workers` supervisor: serving processes sharing one port, restarted when they crash."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.metrics import Metrics

__all__ = ["supervise"]

log = logging.getLogger("ocpp_gateway.supervisor")


def _without_flag(argv: Sequence[str], flag: str) -> list[str]:
    out: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
            continue
        if item == flag:
            skip = True
            continue
        if item.startswith(flag + "="):
            continue
        out.append(item)
    return out


# A crashed worker is restarted; more than this many restarts within the window means
# something is wrong with the machine or the configuration: the supervisor stops and fails.
_MAX_RESTARTS = 5
_RESTART_WINDOW = 60.0


def supervise(config: GatewayConfig, argv: Sequence[str]) -> int:
    """Run `config.workers` serving processes on one port; forward SIGTERM/SIGINT to them.

    Every worker binds the port with SO_REUSEPORT, and the kernel spreads connections. Metrics
    use prometheus_client's multiprocess mode in a temporary directory, so `/metrics` on any
    worker reports the sum over all workers. A worker that exits while the supervisor is not
    stopping has crashed: its live gauges are dropped from the metrics and it is restarted
    (the charge points it held reconnect to the others). More than `_MAX_RESTARTS` crashes
    within `_RESTART_WINDOW` seconds stop every worker and exit with status 1.
    """
    port = config.port
    holder: socket.socket | None = None
    if port == 0:
        # Reserve a concrete port that every worker can share.
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((config.host, 0))
        port = holder.getsockname()[1]
    metrics_dir = tempfile.mkdtemp(prefix="ocpp-gateway-metrics-")
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=metrics_dir)
    child_argv = _without_flag(_without_flag(argv, "--workers"), "--port")
    command = [sys.executable, "-m", "ocpp_gateway.cli", "serve", *child_argv]
    command += ["--workers", "1", "--port", str(port), "--reuse-port"]

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, env=env)

    workers = {w.pid: w for w in (spawn() for _ in range(config.workers))}
    print(
        f"ocpp-gateway supervising {len(workers)} workers on port {port}",
        file=sys.stderr,
        flush=True,
    )
    stopping = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            # os.kill, not Popen.send_signal: that would reap the worker behind os.wait's back.
            # A pid is not reused before os.wait reaps it, so this never hits a stranger.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    crashes: list[float] = []
    try:
        while workers:
            pid, wait_status = os.wait()
            worker = workers.pop(pid, None)
            if worker is None:
                continue
            code = worker.returncode = os.waitstatus_to_exitcode(wait_status)
            Metrics.mark_process_dead(pid, metrics_dir)
            if stopping:
                status = status or code
                continue
            now = time.monotonic()
            crashes = [t for t in crashes if now - t < _RESTART_WINDOW] + [now]
            if len(crashes) > _MAX_RESTARTS:
                log.error("workers keep crashing; stopping", extra={"exit_status": code})
                forward(signal.SIGTERM, None)
                status = 1
                continue
            log.warning("worker exited; restarting it", extra={"pid": pid, "exit_status": code})
            replacement = spawn()
            workers[replacement.pid] = replacement
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.terminate()
                worker.wait()
        if holder is not None:
            holder.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return status
