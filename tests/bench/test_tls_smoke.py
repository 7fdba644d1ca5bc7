"""Smoke run of `ocpp-gateway bench tls`: every setup (nginx in front included) on a tiny fleet.

Checks that the run completes and its report is consistent (fleets connected, calls answered,
TLS sessions resumed, the anchor measured); the figures themselves are not asserted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ocpp_gateway.bench import main
from ocpp_gateway.bench.tls import SETUPS, nginx_available


def _setups() -> list[str]:
    if nginx_available():
        return list(SETUPS)
    if os.environ.get("REQUIRE_TEST_TOOLS"):
        pytest.fail("REQUIRE_TEST_TOOLS is set but nginx or libnginx-mod-stream is missing")
    return [name for name in SETUPS if name != "nginx_ec"]


def test_bench_tls_smoke(tmp_path: Path) -> None:
    setups = _setups()
    argv = ["tls", "--out", str(tmp_path), "--setups", ",".join(setups), "--repeats", "1"]
    argv += ["--seconds", "0.5", "--warmup", "0.2", "--idle", "30", "--handshakes", "6"]
    argv += ["--flood", "--flood-seconds", "0.5", "--flood-rate", "100", "--flood-loris", "40"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "tls.json").read_text())
    for name in setups:
        raw = report["setups"][name]
        assert raw["idle"]["connected"] == 30 and raw["idle"]["failures"] == {}, name
        assert raw["idle"]["storm"]["booted"] == 30, name
        assert raw["loops"][0]["calls"] > 0 and raw["loops"][0]["errors"] == 0, name
        for phase in ("full13", "resumed13", "full12", "resumed12"):
            assert raw[phase][0]["ok"] == 6, (name, phase)
        if name != "ws":
            # Each connection after the first offers the previous session: all resumed.
            assert raw["resumed13"][0]["resumed"] == raw["resumed12"][0]["resumed"] == 5, name
            assert raw["full13"][0]["resumed"] == 0, name
            assert report["summary"][name]["rt_ratio"] > 0, name
    flood = report["flood"]
    assert flood["gate defaults"]["refused"].get("tls_address_rate", 0) > 0
    assert "tls_address_rate" not in flood["per-address limits off"]["refused"]
    for figures in flood.values():
        assert figures["quiet"]["calls"] > 0 and figures["flood"]["failed"] == 0
    assert "| wss_ec |" in (tmp_path / "tls.md").read_text()
