"""The deploy/ files: they parse, use only metrics the gateway exports, pass promtool, and set
no trap (flags that override the configuration, root, no health check, a bloated context)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kit import WAIT, free_port, gateway_process, missing_tool
from ocpp_gateway.metrics import Metrics

from ._support import SETTING_FLAGS, check_gateway_manifests, final_stage

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\bocpp_gateway_[a-z_]+")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("REQUIRE_TEST_TOOLS"),
    reason="needs promtool (apt-get install prometheus); required when REQUIRE_TEST_TOOLS is set",
)


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
    manifests = check_gateway_manifests(DEPLOY / "kubernetes", tmp_path)
    (deployment,) = manifests["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert manifests["settings"]["upstream"]["url"].startswith("ws://")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert "gateway" in compose["services"]
    assert not SETTING_FLAGS & set(_words(compose["services"]["gateway"].get("command", [])))
    assert container["image"].startswith("ocpp-gateway:")
    environment = compose["services"]["gateway"]["environment"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [target] = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert target == f"gateway:{environment['OCPP_GATEWAY_ADMIN__PORT']}"


def _words(command: object) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command or [])  # type: ignore[call-overload]


@needs_promtool
@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "alerts.yaml"),
        ("test", "rules", "rules.test.yml"),
        ("check", "config", "prometheus-broker.yml"),
        ("check", "rules", "broker-alerts.yaml"),
        ("test", "rules", "broker-rules.test.yml"),
    ],
    ids=" ".join,
)
def test_promtool(args: tuple[str, ...]) -> None:
    if PROMTOOL is None:
        pytest.fail("REQUIRE_TEST_TOOLS is set but promtool is missing")
    result = subprocess.run(
        [PROMTOOL, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("rules_file", "tests_file"),
    [("alerts.yaml", "rules.test.yml"), ("broker-alerts.yaml", "broker-rules.test.yml")],
)
def test_every_alert_has_a_promtool_unit_test(rules_file: str, tests_file: str) -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / rules_file).read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((DEPLOY / "prometheus" / tests_file).read_text())
    assert tests["rule_files"] == [rules_file]
    firing = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert firing == names


def test_the_image_runs_unprivileged_with_a_health_check_and_no_setting_flags() -> None:
    stage = final_stage()
    keywords = [keyword for keyword, _ in stage]
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert keywords.count("HEALTHCHECK") == 1
    entrypoint = [json.loads(rest) for keyword, rest in stage if keyword == "ENTRYPOINT"]
    assert entrypoint == [["ocpp-gateway", "serve"]]
    for keyword, rest in stage:
        if keyword in ("ENTRYPOINT", "CMD"):
            words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
            assert not SETTING_FLAGS & set(words), (keyword, words)
    # No setting baked in with ENV either: it would hide the gateway's documented defaults.
    assert not [rest for keyword, rest in stage if keyword == "ENV" and "OCPP_GATEWAY_" in rest]


async def test_the_health_check_command_probes_the_configured_port() -> None:
    (check,) = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    command = check.split(" CMD ", 1)[1]
    # The image's `python` is the interpreter the package is installed in: here, this one.
    assert command.startswith("python ")
    command = shlex.quote(sys.executable) + command[len("python") :]
    async with gateway_process() as gateway:
        port = gateway.url.rsplit(":", 1)[1]

        async def run_check(env_port: str) -> int:
            env = dict(os.environ, OCPP_GATEWAY_PORT=env_port)
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", command, env=env, stderr=asyncio.subprocess.DEVNULL
            )
            return await asyncio.wait_for(proc.wait(), WAIT)

        assert await run_check(port) == 0
        assert await run_check(str(free_port())) != 0  # nobody listens there


async def test_the_health_check_asks_the_admin_port_when_one_is_set() -> None:
    (check,) = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    command = shlex.quote(sys.executable) + check.split(" CMD ", 1)[1][len("python") :]
    async with gateway_process(
        "--admin-port", "0", env={"OCPP_GATEWAY_METRICS_ON_MAIN_PORT": "false"}
    ) as gateway:
        port = gateway.url.rsplit(":", 1)[1]
        admin_url = r"admin \(probes, metrics, API\) at http://127\.0\.0\.1:(\d+)"
        admin = (await gateway.wait_for_line(admin_url)).group(1)

        async def run_check(**env_vars: str) -> int:
            env = dict(os.environ, **env_vars)
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", command, env=env, stderr=asyncio.subprocess.DEVNULL
            )
            return await asyncio.wait_for(proc.wait(), WAIT)

        assert await run_check(OCPP_GATEWAY_PORT=port, OCPP_GATEWAY_ADMIN__PORT=admin) == 0
        # The charge point port no longer serves /healthz: without the admin port, it fails.
        assert await run_check(OCPP_GATEWAY_PORT=port) != 0


def _dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(regex)))
    return rules


def docker_context() -> list[str]:
    """The files `docker build` would send, by Docker's rules: a path is left out when the last
    pattern matching it, or one of its parent directories, excludes it."""
    rules = _dockerignore_rules()

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for negate, regex in rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                result = not negate
        return result

    found = []
    for directory, dirs, files in os.walk(ROOT):
        rel = Path(directory).relative_to(ROOT).as_posix()
        rel = "" if rel == "." else rel + "/"
        dirs[:] = [d for d in dirs if not ignored(rel + d)]
        found += [rel + f for f in files if not ignored(rel + f)]
    return sorted(found)


def test_the_build_context_holds_the_sources_and_nothing_else(tmp_path: Path) -> None:
    context = docker_context()
    for needed in (
        "Cargo.toml",
        "Cargo.lock",
        "pyproject.toml",
        "README.md",
        "python/ocpp_gateway/cli.py",
        "python/ocpp_gateway/py.typed",
        "rust/ocpp-core/src/lib.rs",
        "rust/ocpp-py/src/lib.rs",
    ):
        assert needed in context, needed
    for path in context:
        parts = path.split("/")
        assert parts[0] in (
            "Cargo.toml",
            "Cargo.lock",
            "pyproject.toml",
            "README.md",
            "python",
            "rust",
        ), path
        assert not {"target", ".git", "__pycache__", ".venv", ".mypy_cache"} & set(parts), path
        assert not path.endswith((".so", ".pyc")), path
    # The wheel's build reads only the context: maturin packs it into a source distribution.
    maturin = shutil.which("maturin") or missing_tool(
        "maturin is not installed (pip install 'maturin>=1.5,<2')"
    )
    copy = tmp_path / "context"
    for path in context:
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, copy / path)
    result = subprocess.run(
        [maturin, "sdist", "--out", str(tmp_path / "dist")],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, CARGO_NET_OFFLINE="true"),
    )
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "dist").glob("ocpp_gateway-*.tar.gz"))
