"""Gateway CPU per hostile HTTP request beside an ordinary one, this tree and another (issue 19).

Starts `ocpp-gateway serve` (local responder, an admin port and token) from each tree given,
sends each kind of request N times on its own connection, and reads the gateway process's CPU
time (utime + stime from /proc/PID/stat) before and after each batch. Prints a table in ms of
gateway CPU per request. Kinds: an ordinary authorised API request and probe, an 8,000-letter
header after a control character on either port (F1), a token-less path of 8,000 letters
ending in `%3A%2F%2F` (F1), a token followed by CR (F3).

    python benches/capacity/hostile_cpu.py --before /path/to/other/tree [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

TOKEN = "s3cr3t-Token-0123456789abcdef"
HERE = Path(__file__).resolve().parents[2]


def _request(path: bytes, *headers: bytes) -> bytes:
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


BEARER = b"Authorization: Bearer " + TOKEN.encode()
KINDS = {
    "ordinary API request (admin, token)": ("admin", _request(b"/charge-points", BEARER)),
    "ordinary probe (charge point port)": ("cp", _request(b"/healthz")),
    "8,000 letters in a header (admin)": ("admin", _request(b"/x", b"X-A: \x01" + b"B" * 8000)),
    "8,000 letters in a header (charge point)": (
        "cp",
        _request(b"/x", b"X-A: \x01" + b"B" * 8000),
    ),
    "8,000 letters + %3A%2F%2F in the path, no token": (
        "admin",
        _request(b"/charge-points/" + b"A" * 8000 + b"%3A%2F%2F"),
    ),
    "token followed by CR (admin)": ("admin", _request(b"/charge-points", BEARER + b"\r")),
}


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        while sock.recv(65536):
            pass


def _start(tree: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(tree / "python"),
        OCPP_GATEWAY_ADMIN__TOKEN=TOKEN,
        OCPP_GATEWAY_ADMIN__HOST="127.0.0.1",
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "ocpp_gateway.cli", "serve", "--host", "127.0.0.1"),
            *("--port", "0", "--admin-port", "0", "--log-level", "info"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("msg") == "gateway listening":
            # Keep reading stderr in the background so the pipe never fills.
            subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
            return proc, int(entry["port"]), int(entry["admin_port"])
    proc.kill()
    raise RuntimeError(f"{tree}: the gateway did not start")


def measure(tree: Path, requests: int) -> dict[str, float]:
    """Milliseconds of gateway CPU per request of each kind."""
    proc, port, admin = _start(tree)
    try:
        out = {}
        for name, (which, data) in KINDS.items():
            target = admin if which == "admin" else port
            _send(target, data)  # warm up
            before = _cpu(proc.pid)
            for _ in range(requests):
                _send(target, data)
            out[name] = (_cpu(proc.pid) - before) * 1000 / requests
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", type=Path, help="another tree (e.g. a checkout of main)")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    trees = {"after": HERE}
    if args.before:
        trees = {"before": args.before.resolve(), **trees}
    results = {label: measure(tree, args.requests) for label, tree in trees.items()}
    print(f"| request ({args.requests} each, ms gateway CPU per request) | " + " | ".join(results))
    print("|---|" + "---|" * len(results))
    for name in KINDS:
        print(f"| {name} | " + " | ".join(f"{results[k][name]:.2f}" for k in results))


if __name__ == "__main__":
    main()
