"""The `--workers` supervisor: serving processes sharing one port, restarted when they crash."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.metrics import Metrics
from ocpp_gateway.security.tls import new_ticket_keys

__all__ = ["supervise"]

log = logging.getLogger("ocpp_gateway.supervisor")


def _die_with_parent() -> Callable[[], None] | None:
    """A function for a worker to run before exec (Linux) so that the kernel sends it SIGTERM
    when the supervisor dies, by SIGKILL too: no worker keeps serving the port orphaned (it
    drains and exits as on a normal shutdown). None where prctl is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    supervisor = os.getpid()
    set_parent_death_signal = 1  # PR_SET_PDEATHSIG

    def arm() -> None:
        prctl(set_parent_death_signal, signal.SIGTERM)
        if os.getppid() != supervisor:  # it died before the signal was armed
            os._exit(1)

    return arm


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


def _shared_port(host: str, port: int, holders: list[socket.socket]) -> int:
    """A concrete port every worker can bind: `port`, or for 0 a free one reserved by a
    SO_REUSEPORT socket kept in `holders` until the supervisor ends."""
    if port != 0:
        return port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, 0))
    holders.append(holder)
    return int(holder.getsockname()[1])


def _pass_on(workers: Mapping[int, object], signum: int, _frame: Any) -> None:
    """Send a signal on to every worker."""
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def supervise(config: GatewayConfig, argv: Sequence[str]) -> int:
    """Run `config.workers` serving processes on one port; forward SIGTERM/SIGINT (and
    SIGHUP, a configuration reload) to them.

    Every worker binds the port with SO_REUSEPORT, and the kernel spreads connections. Metrics
    use prometheus_client's multiprocess mode in a temporary directory, so `/metrics` on any
    worker reports the sum over all workers. A worker that exits while the supervisor is not
    stopping has crashed: its live gauges are dropped from the metrics and it is restarted
    (the charge points it held reconnect to the others). More than `_MAX_RESTARTS` crashes
    within `_RESTART_WINDOW` seconds stop every worker and exit with status 1.
    """
    holders: list[socket.socket] = []
    port = _shared_port(config.host, config.port, holders)
    metrics_dir = tempfile.mkdtemp(prefix="ocpp-gateway-metrics-")
    # The workers' admin sockets (admin.py): private to this user (mkdtemp makes it 0700).
    peer_dir = tempfile.mkdtemp(prefix="ocpp-gateway-admin-")
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=metrics_dir)
    security = config.security
    if security.tls_cert and not security.tls_ticket_key_file:
        # One set of TLS session ticket keys for every worker, so that a charge point the
        # kernel sends to another worker on reconnect still resumes its session.
        key_file = os.path.join(peer_dir, "tls-ticket.key")
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(new_ticket_keys())
        env["OCPP_GATEWAY_SECURITY__TLS_TICKET_KEY_FILE"] = key_file
    child_argv = argv
    for flag in ("--workers", "--port", "--admin-port"):
        child_argv = _without_flag(child_argv, flag)
    command = [sys.executable, "-m", "ocpp_gateway.cli", "serve", *child_argv]
    command += ["--workers", "1", "--port", str(port), "--reuse-port"]
    if config.admin.port is not None:
        admin_port = _shared_port(config.admin.host, config.admin.port, holders)
        command += ["--admin-port", str(admin_port), "--peer-dir", peer_dir]

    arm = _die_with_parent()

    def spawn(slot: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*command, "--worker-id", str(slot)], env=env, preexec_fn=arm)

    slots: dict[int, int] = {}  # pid -> worker id; a restarted worker takes the same id
    workers: dict[int, subprocess.Popen[bytes]] = {}
    for slot in range(config.workers):
        started = spawn(slot)
        workers[started.pid] = started
        slots[started.pid] = slot
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
    # SIGHUP: each worker reads the configuration again (`cli._reload`); none stops.
    signal.signal(signal.SIGHUP, functools.partial(_pass_on, workers))
    status = 0
    crashes: list[float] = []
    try:
        while workers:
            pid, wait_status = os.wait()
            worker = workers.pop(pid, None)
            slot = slots.pop(pid, 0)
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
            log.warning(
                "worker exited; restarting it",
                extra={"pid": pid, "exit_status": code, "worker_slot": slot},
            )
            replacement = spawn(slot)
            workers[replacement.pid] = replacement
            slots[replacement.pid] = slot
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.terminate()
                worker.wait()
        for holder in holders:
            holder.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        shutil.rmtree(peer_dir, ignore_errors=True)
    return status
