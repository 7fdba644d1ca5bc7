"""Helpers of the deploy tests: the checks every kit's Kubernetes manifests pass, the image's
Dockerfile read as instructions, the Prometheus HTTP API, Grafana's variable substitution, the
simulated fleet's profile, and the wait bound of tests that run Prometheus, a NATS cluster and
gateway processes together."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes_validate
import yaml

from kit import WAIT, poll
from ocpp_gateway.preflight import check_config
from ocpp_gateway.settings_table import flags
from ocpp_gateway.simulate.profile import Profile

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
# Flags that set a setting: in an image or a manifest they would override TOML and environment.
SETTING_FLAGS = frozenset(flags().values())

#: Each wait of the deploy tests: Prometheus evaluating rules, a NATS cluster electing its
#: leaders and gateway processes share the machine, so they get twice the kit's bound.
DEPLOY_WAIT = 2 * WAIT

# A fleet busy enough for a rate over a few seconds; one in five charge points sometimes sends
# an invalid frame, so the rejection panels have data too.
PROFILE = Profile(
    heartbeat_interval=0.5,
    status_interval=1.0,
    transaction_interval=1.0,
    transaction_duration=2.0,
    meter_interval=0.5,
    connectors=2,
    misbehave_fraction=0.2,
    misbehave_probability=0.1,
    boot_retry_interval=0.5,
)


def grafana_rate_interval(scrape_seconds: float, interval_seconds: float) -> str:
    """`$__rate_interval` as Grafana computes it: max($__interval + scrape, 4 * scrape)."""
    return f"{max(interval_seconds + scrape_seconds, 4 * scrape_seconds):g}s"


def grafana_regex_value(values: list[str]) -> str:
    """A multi-value variable in a Prometheus regex, as Grafana formats it: (a|b), with regex
    metacharacters escaped by a double backslash (the regex sits in a PromQL string)."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace `$name` and `${name}` (longest names first) and check that none is left."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


@dataclass
class Prometheus:
    """A Prometheus server's HTTP API."""

    url: str
    http: aiohttp.ClientSession

    async def api(self, path: str, **params: str) -> Any:
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as response:
            body = await response.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def poll(self, what: str, probe: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
        """Re-evaluate `probe` until `done` holds; Prometheus has no event to wait on."""
        last: list[Any] = [None]

        async def reached() -> tuple[Any] | None:
            last[0] = await probe()
            return (last[0],) if done(last[0]) else None

        try:
            (value,) = await poll(reached, what, DEPLOY_WAIT, every=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last: {last[0]}") from None
        return value

    async def evaluated_rules(self) -> list[dict[str, Any]]:
        """Poll until Prometheus has evaluated every loaded rule without an error.

        Returns:
            The rules, as the API lists them (name, state, health, ...).
        """

        async def rules() -> list[dict[str, Any]]:
            groups = (await self.api("rules"))["groups"]
            return [rule for group in groups for rule in group["rules"]]

        evaluated: list[dict[str, Any]] = await self.poll(
            "rules evaluated",
            rules,
            lambda found: found and all(r["health"] == "ok" for r in found),
        )
        return evaluated


def values(result: list[dict[str, Any]]) -> list[float]:
    """The sample values of an instant query's result."""
    return [float(sample["value"][1]) for sample in result]


def check_gateway_manifests(directory: Path, tmp_path: Path) -> dict[str, Any]:
    """The checks every kit's Kubernetes manifests pass (those of `directory`, *.yaml): the
    kinds, probes on the admin listener, no setting by flag, the image's user, a grace period
    longer than the drain, a ConfigMap file the gateway's own checker accepts.

    Returns:
        The manifests by kind (a list per kind) and the ConfigMap's settings under "settings".
    """
    docs = [
        doc
        for path in sorted(directory.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
    ]
    # Kubernetes' own OpenAPI schemas, strict (no field the API does not know), of the oldest
    # release still in wide use and the newest the schema package ships.
    for doc in docs:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    configmap = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    # The shipped configuration must pass the gateway's own checker.
    toml_text = configmap["data"]["gateway.toml"]
    shipped_config = tomllib.loads(toml_text)
    assert pod["terminationGracePeriodSeconds"] > shipped_config["drain_timeout"]
    assert not SETTING_FLAGS & set(container.get("args", []) + container.get("command", []))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in ports, probe
    # The pod runs as the image's user, so runAsNonRoot holds and file ownership matches.
    (user,) = [rest for keyword, rest in final_stage() if keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert str(pod["securityContext"]["runAsUser"]) == uid
    assert str(pod["securityContext"].get("runAsGroup", gid)) == (gid or uid)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) in ports.values()
    # Probes and scrapes use the admin listener the ConfigMap turns on, not the charge point
    # port (which may ask for client certificates).
    admin_port = shipped_config["admin"]["port"]
    assert ports["admin"] == admin_port == int(annotations["prometheus.io/port"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "admin", probe
    assert shipped_config["metrics_on_main_port"] is False
    # Selectors find the pods, the Service targets a named container port, and the config
    # volume names the ConfigMap.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for doc in docs:
        selector = doc.get("spec", {}).get("selector")
        if selector is not None:
            match = selector.get("matchLabels", selector)
            assert match.items() <= labels.items(), doc["kind"]
        if doc["kind"] == "Service":
            for port in doc["spec"]["ports"]:
                assert port["targetPort"] in ports, port
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    shipped = tmp_path / "gateway.toml"
    shipped.write_text(toml_text)
    assert check_config(str(shipped)) == []
    by_kind: dict[str, Any] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    by_kind["settings"] = shipped_config
    return by_kind


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]
