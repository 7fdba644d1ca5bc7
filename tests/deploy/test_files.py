"""The deploy/ files: they parse, and every metric they use is one the gateway exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from ocpp_gateway.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC = re.compile(r"\bocpp_gateway_[a-z_]+")


def exported_names() -> set[str]:
    metrics = Metrics(["Heartbeat"])
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def test_alert_rules_are_well_formed_and_use_real_metrics() -> None:
    rules_file = DEPLOY / "prometheus" / "alerts.yaml"
    doc = yaml.safe_load(rules_file.read_text())
    known = exported_names()
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert len(rules) >= 5
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        for name in METRIC.findall(rule["expr"]):
            assert name in known, (rule["alert"], name)
    if shutil.which("promtool"):  # extra check where Prometheus' tool is installed
        result = subprocess.run(
            ["promtool", "check", "rules", str(rules_file)], capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stderr


def test_grafana_dashboard_queries_real_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    known = exported_names()
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used <= known, used - known
    # The DESIGN.md contract metrics are all on the dashboard.
    for name in (
        "ocpp_gateway_connected_charge_points",
        "ocpp_gateway_messages_total",
        "ocpp_gateway_rejected_messages_total",
        "ocpp_gateway_call_duration_seconds_bucket",
    ):
        assert name in used


def test_kubernetes_and_compose_manifests(tmp_path: Path) -> None:
    docs = [
        doc
        for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
    ]
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    configmap = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    # The shipped configuration must pass the gateway's own checker.
    import tomllib

    from ocpp_gateway.config import check_config

    toml_text = configmap["data"]["gateway.toml"]
    drain = tomllib.loads(toml_text)["drain_timeout"]
    assert pod["terminationGracePeriodSeconds"] > drain
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert "gateway" in compose["services"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "ENTRYPOINT" in dockerfile
    assert "USER" in dockerfile
    shipped = tmp_path / "gateway.toml"
    shipped.write_text(toml_text)
    assert check_config(str(shipped)) == []
