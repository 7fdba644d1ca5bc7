"""The planner with TLS costs (`bench plan --tls`) and the reverse question (`--fit`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ocpp_gateway.bench import main
from ocpp_gateway.bench.planner import fit, plan, tls_costs
from ocpp_gateway.bench.tls import summarize

REPORT = Path(__file__).resolve().parents[2] / "benches" / "results" / "report.json"


def _tls_report() -> dict[str, Any]:
    """A TLS run's raw figures as `bench tls` records them (two setups, two repetitions)."""

    def phase(us: float, resumed: int) -> dict[str, Any]:
        return {"connections": 10, "resumed": resumed, "ok": 10, "cpu_us_per_connection": us}

    def setup(rt: list[float], kb: float, conn: dict[str, float]) -> dict[str, Any]:
        return {
            "loops": [{"cpu_us_per_rt": value} for value in rt],
            "idle": {"kb_per_cp": kb},
            **{p: [phase(us, 9 if p.startswith("resumed") else 0)] * 2 for p, us in conn.items()},
        }

    plain = {"full13": 200.0, "resumed13": 200.0, "full12": 200.0, "resumed12": 200.0}
    wss = {"full13": 900.0, "resumed13": 700.0, "full12": 800.0, "resumed12": 450.0}
    results = {"ws": setup([30.0, 40.0], 30.0, plain), "wss_ec": setup([45.0, 52.0], 54.0, wss)}
    return {"setups": results, "summary": summarize(results)}


def test_summary_pairs_repetitions_and_subtracts_a_plain_connection() -> None:
    row = _tls_report()["summary"]["wss_ec"]
    assert row["rt_ratio"] == pytest.approx((45 / 30 + 52 / 40) / 2)
    assert row["extra_kb_per_cp"] == pytest.approx(24.0)
    assert row["handshake_us"] == {
        "full13": 700.0,
        "resumed13": 500.0,
        "full12": 600.0,
        "resumed12": 250.0,
    }
    assert row["resumed_share12"] == pytest.approx(250 / 600)
    assert row["resumed"]["resumed12"] == 18


def test_tls_raises_cpu_memory_and_reconnect_by_the_measured_costs() -> None:
    report = json.loads(REPORT.read_text())
    costs = tls_costs(_tls_report(), "wss_ec")
    assert costs.handshake_us == 700.0 and costs.resumed_us == 500.0
    plain = plan(report, 20_000, "realistic-1.6")
    wss = plan(report, 20_000, "realistic-1.6", tls=costs)
    idle = report["scaling"]["gateway"]["steps"][-1]["idle_cpu_us_per_cp_s"] * 20_000e-6 / 0.6
    assert wss.cores - idle == pytest.approx((plain.cores - idle) * costs.rt_ratio)
    assert wss.memory_per_cp == pytest.approx(plain.memory_per_cp + 24 * 1024)
    assert wss.reconnect_seconds > plain.reconnect_seconds
    assert any("tls_ticket_key_file" in note for note in wss.notes)
    with pytest.raises(KeyError, match="nginx_ec"):
        tls_costs(_tls_report(), "nginx_ec")


def test_fit_is_bounded_by_the_scarcer_resource() -> None:
    report = json.loads(REPORT.read_text())
    costs = tls_costs(_tls_report(), "wss_ec")
    roomy = fit(report, "realistic-1.6", 2, 64 * 2**30, tls=costs)
    assert roomy.bound == "CPU" and roomy.charge_points == roomy.by_cpu
    assert roomy.plan.cores == pytest.approx(2, rel=0.01)
    tight = fit(report, "realistic-1.6", 2, 2 * 2**30, tls=costs)
    assert tight.bound == "memory" and tight.charge_points == tight.by_memory
    assert tight.plan.memory_bytes <= 2 * 2**30
    plain = fit(report, "realistic-1.6", 2, 2 * 2**30)
    assert plain.charge_points > tight.charge_points  # TLS costs memory per charge point


def test_plan_command_with_tls_and_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tls_file = tmp_path / "tls.json"
    tls_file.write_text(json.dumps(_tls_report()))
    argv = ["plan", "--fit", "--cores", "4", "--memory-gib", "8", "--profile", "realistic-1.6"]
    argv += ["--from", str(REPORT), "--tls", "wss_ec", "--tls-from", str(tls_file)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "machine: 4 cores, 8.0 GiB" in out and "TLS (wss_ec)" in out
    assert main([*argv[:-2], "--tls", "nope", "--tls-from", str(tls_file)]) == 2


def test_the_capacity_report_carries_the_tls_and_broker_runs_beside_it(tmp_path: Path) -> None:
    from ocpp_gateway.bench.report import companions

    assert companions(tmp_path) == ""
    (tmp_path / "tls.json").write_text(json.dumps(_tls_report()))
    phases = [{"gateway_us": us, "broker_us": 50.0, "backend_us": 90.0} for us in (110, 100, 120)]
    floor = {"nats": {"phases": phases, "idle": {"gateway_kb_per_cp": 16.5}}}
    (tmp_path / "broker_floor.json").write_text(json.dumps(floor))
    text = companions(tmp_path)
    row = _tls_report()["summary"]["wss_ec"]
    assert f"| wss_ec | {row['cpu_us_per_rt']:.1f} | {row['rt_ratio']:.2f}x |" in text
    assert "| nats | 110.0 | 50.0 | 90.0 | 16.5 |" in text  # the median of the three
