"""Smoke run of `ocpp-gateway bench`: every scenario and baseline on a tiny fleet, then the planner.

Checks that the suite produces a complete, consistent report; the figures themselves are not
asserted (a smoke run on a shared machine measures nothing reliable).
"""

from __future__ import annotations

import decimal
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import ocpp
import pytest

from ocpp_gateway.bench import main
from ocpp_gateway.bench.frames import REQUESTS, RESPONSES, V16, CallTemplate, call_result
from ocpp_gateway.bench.planner import call_rates, plan
from ocpp_gateway.bench.ramp import fleet_ids
from ocpp_gateway.bench.summary import percentiles
from ocpp_gateway.bench.targets import PACKAGED_BASELINES
from ocpp_gateway.simulate import PROFILES

BASELINES = PACKAGED_BASELINES
SCHEMAS = Path(ocpp.__file__).parent


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    out = tmp_path_factory.mktemp("bench")
    assert main(["--smoke", "--quiet", "--out", str(out), "--baselines", str(BASELINES)]) == 0
    yield out, json.loads((out / "report.json").read_text())


def test_every_target_ran_every_scenario(smoke: tuple[Path, dict[str, Any]]) -> None:
    _, report = smoke
    targets = report["targets"]
    assert set(targets) == {"gateway", "bare_relay", "ocpp_lib_relay", "direct"}
    for name, target in targets.items():
        assert target["connect"]["failures"] == {}, name
        for phase in ("throughput", "paced"):
            assert target[phase]["calls"] > 0, (name, phase)
            assert target[phase]["errors"] == 0, (name, phase)  # every canned call is valid
            assert target[phase]["latency_ms"]["p50"] > 0, (name, phase)
        assert target["storm"]["booted"] == target["storm"]["charge_points"] > 0, name
        simulated = target["simulated"]
        assert simulated["booted"] == simulated["charge_points"], name
        assert simulated["calls"] > 0 and simulated["errors"] == {}, name
        assert len(target["actions"]) == (0 if name == "direct" else 12), name
    for name in ("gateway", "bare_relay", "ocpp_lib_relay"):
        assert targets[name]["throughput"]["cpu_per_rt_us"] > 0, name
        assert targets[name]["memory"]["idle_rss"] > targets[name]["memory"]["base_rss"] > 0


def test_scaling_reached_every_step(smoke: tuple[Path, dict[str, Any]]) -> None:
    _, report = smoke
    steps = report["meta"]["settings"]["scale_steps"]
    for name in ("gateway", "bare_relay"):
        scaling = report["scaling"][name]
        assert scaling["reached"] == max(steps)
        assert [s["charge_points"] for s in scaling["steps"]] == steps
        assert all(s["heartbeat_failed"] == 0 and s["heartbeat_ms"] for s in scaling["steps"])


def test_report_has_table_checks_and_plots(smoke: tuple[Path, dict[str, Any]]) -> None:
    out, report = smoke
    text = (out / "report.md").read_text()
    headings = ("## Goals", "## Capacity table", "## Simulated fleet", "## Reconnect storm")
    for heading in headings:
        assert heading in text
    goals = {check["goal"] for check in report["summary"]["checks"]}
    assert any("bare relay" in goal for goal in goals)
    assert any("added latency" in goal for goal in goals)
    for name in ("throughput_latency", "cpu_by_action", "memory_connections"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name}.png)" in text


def test_report_without_matplotlib_says_so(
    smoke: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, _ = smoke
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert main(["report", "--from", str(out / "report.json"), "--out", str(tmp_path)]) == 0
    assert "pip install 'ocpp-gateway[bench]'" in capsys.readouterr().err
    text = (tmp_path / "report.md").read_text()
    assert "No plots: matplotlib is not installed" in text
    assert "## Capacity table" in text
    assert not list(tmp_path.glob("*.png"))


def test_planner_from_the_smoke_report(
    smoke: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = smoke
    argv = ["plan", "--charge-points", "10000", "--profile", "realistic-1.6"]
    assert main([*argv, "--from", str(out / "report.json"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["cores"] > 0
    assert printed["workers"] >= 2  # 10,000 charge points need two sockets each: > 1 worker
    assert printed["memory_bytes"] > 10_000 * 1024
    double = plan(report, 20_000, "realistic-1.6")
    assert double.cores == pytest.approx(2 * printed["cores"])


def test_planner_rejects_unknown_profile(
    smoke: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = smoke
    argv = ["plan", "--charge-points", "5", "--profile", "nope", "--from", str(out / "report.json")]
    assert main(argv) == 2
    assert "unknown profile" in capsys.readouterr().err


def test_call_rates_follow_the_profile() -> None:
    idle = call_rates(PROFILES["idle-1.6"])
    assert idle == {"Heartbeat": pytest.approx(1 / 300)}
    busy = call_rates(PROFILES["busy-2.0.1"])
    assert "StartTransaction" not in busy
    assert busy["TransactionEvent"] > busy["Heartbeat"]


@pytest.mark.parametrize("version", sorted(REQUESTS))
def test_canned_frames_are_schema_valid(version: str) -> None:
    folder, suffix = ("v16", "") if version == V16 else ("v201", "Request")
    for action, payload in REQUESTS[version].items():
        schema = json.loads((SCHEMAS / folder / "schemas" / f"{action}{suffix}.json").read_text())
        exact = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
        jsonschema.validate(exact, schema)
        frame = CallTemplate(version, action).frame(b"42")
        answer = json.loads(call_result(version, frame) or b"null")
        assert answer[:2] == [3, "42"]
        response = json.loads((SCHEMAS / folder / "schemas" / f"{action}Response.json").read_text())
        jsonschema.validate(answer[2], response)
    for action, payload in RESPONSES[version].items():
        schema = json.loads((SCHEMAS / folder / "schemas" / f"{action}Response.json").read_text())
        jsonschema.validate(payload, schema)


def test_fleet_mix_and_percentiles() -> None:
    fleet = fleet_ids("cp", 10, 0.3)
    assert sum(version != V16 for _, version in fleet) == 3
    assert len({cp for cp, _ in fleet}) == 10
    result = percentiles([i / 1000 for i in range(1, 1001)])
    assert result["p50"] == pytest.approx(500.5, abs=1)
    assert result["p99"] == pytest.approx(990, abs=1.5)
    assert result["max"] == pytest.approx(1000)
    assert percentiles([]) == {}
