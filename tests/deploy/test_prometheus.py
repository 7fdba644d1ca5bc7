"""The monitoring kit against a real Prometheus scraping a real gateway under a simulated fleet.

Prometheus (Debian package `prometheus`) runs on 127.0.0.1 with a generated configuration that
scrapes an `ocpp-gateway serve` process every second and evaluates deploy/prometheus/alerts.yaml.
Every expression of the Grafana dashboard (template variables substituted as Grafana would) and
every alert expression then runs through the Prometheus HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from kit import child_process, free_port, gateway_process
from ocpp_gateway.simulate import FleetStats, run_fleet

from ._support import (
    DEPLOY_WAIT,
    PROFILE,
    Prometheus,
    grafana_rate_interval,
    grafana_regex_value,
    substitute,
    values,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = shutil.which("prometheus")
SCRAPE_SECONDS = 1
# The scrape job is deliberately not called "ocpp-gateway": Kubernetes discovery names it after
# its own scrape configuration, and the alerts must find the gateway anyway.
JOB = "gateway-pods"
FLEET_SIZE = 16  # per OCPP version

needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None and not os.environ.get("REQUIRE_TEST_TOOLS"),
    reason="needs prometheus (apt-get install prometheus); required when REQUIRE_TEST_TOOLS is set",
)


def prometheus_config(tmp_path: Path, target: str) -> Path:
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_SECONDS}s",
            "evaluation_interval": f"{SCRAPE_SECONDS}s",
        },
        "rule_files": [str(DEPLOY / "prometheus" / "alerts.yaml")],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


# Metrics a healthy, busy fleet always produces; a panel on any of them must show data.
ALWAYS_THERE = (
    "ocpp_gateway_connected_charge_points",
    "ocpp_gateway_messages_total",
    "ocpp_gateway_rejected_messages_total",
    "ocpp_gateway_call_duration_seconds_bucket",
    "ocpp_gateway_frame_size_bytes_bucket",
)


@needs_prometheus
async def test_dashboard_and_alerts_against_a_real_prometheus(tmp_path: Path) -> None:
    if PROMETHEUS is None:
        pytest.fail("REQUIRE_TEST_TOOLS is set but the prometheus binary is missing")
    async with contextlib.AsyncExitStack() as stack:
        gateway = await stack.enter_async_context(gateway_process())
        url = gateway.url
        target = url.removeprefix("ws://")
        prom_port = free_port()
        await stack.enter_async_context(
            child_process(
                PROMETHEUS,
                f"--config.file={prometheus_config(tmp_path, target)}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=(tmp_path / "prometheus.log").open("wb"),
            )
        )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        prom = Prometheus(f"http://127.0.0.1:{prom_port}", http)

        async def ready() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{prom.url}/-/ready") as response:
                    return response.status == 200
            return False

        await prom.poll("prometheus ready", ready, bool)

        fleets = {version: FleetStats() for version in ("ocpp1.6", "ocpp2.0.1")}
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(
                run_fleet(
                    f"{url}/ocpp",
                    [f"PROM-{version}-{i}" for i in range(FLEET_SIZE)],
                    PROFILE.with_version(version),  # type: ignore[arg-type]
                    stats=stats,
                    stop=stop,
                    seed=7,
                )
            )
            for version, stats in fleets.items()
        ]
        try:
            # The dashboard's instance variable, from its own label_values() query.
            async def instances() -> list[str]:
                found: list[str] = await prom.api(
                    "label/instance/values", **{"match[]": "ocpp_gateway_connected_charge_points"}
                )
                return found

            assert await prom.poll("instance label", instances, bool) == [target]
            variables = {
                "__rate_interval": grafana_rate_interval(SCRAPE_SECONDS, SCRAPE_SECONDS),
                "__interval": f"{SCRAPE_SECONDS}s",
                "instance": grafana_regex_value([target]),
            }
            panels = [(title, substitute(expr, variables)) for title, expr in dashboard_targets()]
            assert len(panels) >= 10

            # Wait until every panel that must show data shows it, all charge points are
            # connected and the fleet has answered calls of every kind at least a few times.
            async def panel_results() -> dict[str, list[dict[str, Any]]]:
                return {expr: await prom.query(expr) for _, expr in panels}

            def filled(results: dict[str, list[dict[str, Any]]]) -> bool:
                for expr, result in results.items():
                    if any(name in expr for name in ALWAYS_THERE) and not result:
                        return False
                connected = next(r for e, r in results.items() if "connected_charge" in e)
                booted = sum(stats.booted for stats in fleets.values())
                return sum(values(connected)) == 2 * FLEET_SIZE == booted

            results = await prom.poll("every panel with data", panel_results, filled)
            snapshot = {version: stats.snapshot() for version, stats in fleets.items()}

            for title, expr in panels:
                for value in values(results[expr]):
                    assert math.isfinite(value) and value >= 0, (title, expr, value)

            def panel(title_part: str, expr_part: str = "") -> list[float]:
                for title, expr in panels:
                    if title_part in title and expr_part in expr:
                        return values(results[expr])
                raise AssertionError(f"no panel {title_part!r} with {expr_part!r}")

            by_version = {
                sample["metric"]["ocpp_version"]: float(sample["value"][1])
                for expr, result in results.items()
                if "connected_charge_points" in expr
                for sample in result
            }
            assert by_version == {"ocpp1.6": FLEET_SIZE, "ocpp2.0.1": FLEET_SIZE, "ocpp2.1": 0}
            # Frames per second: the fleet sends several calls per charge point per second.
            rate = sum(panel("Messages per second"))
            assert 2 * FLEET_SIZE * 0.5 < rate < 10_000, rate
            assert sum(panel("Top actions")) <= rate
            assert sum(panel("Rejected messages")) <= 0.05 * rate  # a healthy fleet
            assert 0 < max(panel("Frame size p95")) < 64 * 1024
            # Latency: the gateway's CALL-to-answer interval lies inside the charge point's
            # round trip, so its quantiles cannot exceed the fleet's own (beyond the buckets'
            # 2.5x step); with buckets that do not resolve sub-millisecond round trips they do.
            (p50,) = panel("Call duration", "histogram_quantile(0.5,")
            (p95,) = panel("Call duration", "histogram_quantile(0.95,")
            fleet_p50 = max(s.latency_quantile(0.5) or 0.0 for s in snapshot.values())
            fleet_p95 = max(s.latency_quantile(0.95) or 0.0 for s in snapshot.values())
            assert 0 < fleet_p50 < 0.05, fleet_p50  # loopback: a few milliseconds at most
            assert 0 < p50 <= p95 < 60
            assert p50 <= 2 * fleet_p50, (p50, fleet_p50)
            assert p95 <= 2 * fleet_p95, (p95, fleet_p95)

            # Every alert expression runs, and none holds on a healthy fleet.
            for rule in alert_rules():
                assert await prom.query(rule["expr"]) == [], rule["alert"]

            # Prometheus evaluated the rule file itself without an error.
            evaluated = await prom.evaluated_rules()
            assert {r["name"] for r in evaluated} == {r["alert"] for r in alert_rules()}
            assert all(r["state"] == "inactive" for r in evaluated), evaluated
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), DEPLOY_WAIT)

        # The gateway goes away: OcppGatewayDown's expression finds it, whatever the job name.
        down = next(r["expr"] for r in alert_rules() if r["alert"] == "OcppGatewayDown")
        gateway.signal(signal.SIGTERM)
        assert await gateway.wait(DEPLOY_WAIT) == 0
        result = await prom.poll("OcppGatewayDown holds", lambda: prom.query(down), bool)
        assert [(s["metric"]["job"], s["metric"]["instance"]) for s in result] == [(JOB, target)]


async def test_call_durations_resolve_below_a_millisecond() -> None:
    async with gateway_process() as gateway:
        url = gateway.url
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{url}/ocpp/CLOCK-1", protocols=("ocpp1.6",)) as ws:
                for i in range(20):
                    await ws.send_str(f'[2,"c{i}","Heartbeat",{{}}]')
                    answer = json.loads((await asyncio.wait_for(ws.receive(), DEPLOY_WAIT)).data)
                    assert answer[:2] == [3, f"c{i}"]
            async with http.get(url.replace("ws://", "http://") + "/metrics") as response:
                text = await response.text()
    durations = [
        float(match.group(1))
        for match in re.finditer(
            r'ocpp_gateway_call_duration_seconds_sum\{action="Heartbeat",direction="cp_to_csms"\} '
            r"(\S+)",
            text,
        )
    ]
    assert len(durations) == 1, text
    # Twenty round trips through the local responder take some microseconds each: a clock
    # that resolves them sums to more than zero, and not to a whole number of milliseconds.
    total_ms = durations[0] * 1000
    assert total_ms > 0 and abs(total_ms - round(total_ms)) > 1e-6, total_ms
