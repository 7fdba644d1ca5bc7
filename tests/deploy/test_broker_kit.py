"""The broker topology's deploy kit: deploy/broker/ (compose file, nats.conf, gateway.toml),
deploy/kubernetes/broker/ (manifests and the NATS Helm chart's values), the broker alerts and
the broker dashboard.

The compose file is read as data: what it mounts exists, its services agree with the files they
mount. A three-node nats-server cluster is started on loopback from the compose file's own
nats.conf (only the host:port pairs and the store directory rewritten), two gateway processes
run with the compose file's gateway.toml (only the addresses overridden by environment) and the
example backend with the compose file's arguments; `ocpp` library charge points are answered
through them, also after the NATS node leading the transaction stream was killed, and a real
Prometheus scrapes both nodes with the broker alerts loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import yaml
from nats.js import api
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from kit import child_process, free_port, gateway_process, poll, require_tool, subprocess_env
from ocpp_gateway.backend import NatsBroker
from ocpp_gateway.preflight import check_config
from ocpp_gateway.simulate import FleetStats, run_fleet

from ._support import (
    DEPLOY_WAIT,
    PROFILE,
    SETTING_FLAGS,
    Prometheus,
    check_gateway_manifests,
    grafana_rate_interval,
    grafana_regex_value,
    substitute,
    values,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BROKER = DEPLOY / "broker"
COMPOSE = BROKER / "compose.yaml"
RULES_DIR = DEPLOY / "prometheus"
PROMETHEUS_CONFIG = RULES_DIR / "prometheus-broker.yml"
BROKER_ALERTS = RULES_DIR / "broker-alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "broker-dashboard.json"
KUBERNETES = DEPLOY / "kubernetes" / "broker"
HELM_VALUES = KUBERNETES / "helm" / "nats-values.yaml"
METRIC = re.compile(r"\bocpp_gateway_[a-z_]+")
SCRAPE_SECONDS = 1
FLEET_SIZE = 6  # charge points per gateway node


# -- the compose file as data ---------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def services(kind: str) -> dict[str, dict[str, Any]]:
    """The compose services of one kind: "nats" (image nats:*), "gateway" (built from the
    Dockerfile), "backend" (the example backend), "prometheus"."""
    found = {}
    for name, service in compose()["services"].items():
        image = str(service.get("image", ""))
        entrypoint = service.get("entrypoint") or []
        if image.startswith("nats:"):
            service_kind = "nats"
        elif "build" in service:
            service_kind = "gateway"
        elif "ocpp_gateway.backend.example" in entrypoint:
            service_kind = "backend"
        elif image.startswith("prom/prometheus"):
            service_kind = "prometheus"
        else:
            service_kind = "other"
        if service_kind == kind:
            found[name] = service
    return found


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes left out)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = (COMPOSE.parent / source).resolve()
    return found


def config_path(service: dict[str, Any]) -> Path:
    """The host file a service's `--config` argument names (through its bind mount)."""
    command = list(service["command"])
    target = command[command.index("--config") + 1]
    return mounts(service)[target]


def nats_conf() -> Path:
    (path,) = {config_path(service) for service in services("nats").values()}
    return path


def gateway_toml() -> Path:
    (path,) = {config_path(service) for service in services("gateway").values()}
    return path


def gateway_settings() -> dict[str, Any]:
    return tomllib.loads(gateway_toml().read_text())


def server_urls(url: str) -> list[tuple[str, int]]:
    """(host, port) of each server of a comma-separated NATS URL list."""
    found = []
    for item in url.split(","):
        match = re.fullmatch(r"nats://([\w.-]+):(\d+)", item.strip())
        assert match is not None, item
        found.append((match.group(1), int(match.group(2))))
    return found


def nats_setting(text: str, key: str) -> str:
    """A top-level `key: value` of nats.conf (outside the blocks)."""
    (value,) = re.findall(rf"^{key}:\s*(\S+)", text, flags=re.MULTILINE)
    return str(value)


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m)", text)
    assert match is not None, text
    return float(match.group(1)) * (60 if match.group(2) == "m" else 1)


def nats_bytes(text: str) -> int:
    """A nats.conf size ("20GB", "256MB"): the server counts K, M, G in powers of 1024."""
    match = re.fullmatch(r"(\d+)([KMGT]?)B?", text.upper())
    assert match is not None, text
    unit: int = 1024 ** "_KMGT".index(match.group(2) or "_")
    return int(match.group(1)) * unit


def test_the_compose_file_mounts_files_that_exist_and_its_services_agree() -> None:
    doc = compose()
    nats_nodes = services("nats")
    gateways = services("gateway")
    (backend,) = services("backend").values()
    (prometheus,) = services("prometheus").values()
    assert len(nats_nodes) == 3 and len(gateways) == 2
    for name, service in doc["services"].items():
        for target, source in mounts(service).items():
            assert source.is_file(), (name, target, source)
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert (context / service["build"]["dockerfile"]).is_file(), name
            assert context == ROOT, name
            # The image gets the nats extra, which the package declares.
            assert "nats" in service["build"]["args"]["EXTRAS"].split(","), name
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "nats" in pyproject["project"]["optional-dependencies"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^ARG EXTRAS=", final_stage, flags=re.MULTILINE)
    assert "${EXTRAS:+[$EXTRAS]}" in final_stage

    # NATS: one configuration file for the three nodes, each with its own server name, and the
    # cluster routes name exactly these services on the cluster port.
    text = nats_conf().read_text()
    names = [service["environment"]["NATS_SERVER_NAME"] for service in nats_nodes.values()]
    assert sorted(names) == sorted(nats_nodes)
    assert "$NATS_SERVER_NAME" in text
    cluster_port = int(re.findall(r"^\s+listen:\s*\S+:(\d+)", text, flags=re.MULTILINE)[0])
    routes = re.findall(r"nats-route://([\w.-]+):(\d+)", text)
    assert sorted(routes) == sorted((name, str(cluster_port)) for name in nats_nodes)
    client_port = int(nats_setting(text, "listen").rsplit(":", 1)[1])
    monitor_port = int(nats_setting(text, "http").rsplit(":", 1)[1])
    lame_duck = seconds(nats_setting(text, "lame_duck_duration"))
    lame_duck += seconds(nats_setting(text, "lame_duck_grace_period"))
    for name, service in nats_nodes.items():
        assert f"127.0.0.1:{monitor_port}/healthz" in " ".join(service["healthcheck"]["test"])
        assert seconds(service["stop_grace_period"]) > lame_duck, name
        assert any(volume.endswith(":/data") for volume in service["volumes"]), name
    assert re.search(r"^\s+store_dir:\s*/data\b", text, flags=re.MULTILINE)

    # The gateways: the shipped file, no setting by flag, every NATS node in the URL.
    settings = gateway_settings()
    assert settings["upstream"]["type"] == "nats"
    expected = sorted((name, client_port) for name in nats_nodes)
    assert sorted(server_urls(settings["upstream"]["url"])) == expected
    replicas = settings["upstream"]["options"]["replicas"]
    assert replicas == len(nats_nodes)
    assert settings["workers"] == 1  # broker counters are per process: one per node
    # JetStream reserves each stream's max_bytes when the stream is created: both gateway
    # streams must fit in a node's file store, or their creation fails.
    (file_store,) = re.findall(r"^\s+max_file_store:\s*(\S+)", text, flags=re.MULTILINE)
    assert 2 * settings["upstream"]["options"]["max_bytes"] < nats_bytes(file_store)
    published = []
    for name, service in gateways.items():
        assert not SETTING_FLAGS & set(service["command"]), name
        assert service["environment"]["OCPP_GATEWAY_ADMIN__PORT"] == str(settings["admin"]["port"])
        assert seconds(service["stop_grace_period"]) > settings["drain_timeout"], name
        assert set(service["depends_on"]) == set(nats_nodes), name
        published += [port.split(":")[0] for port in service["ports"]]
    assert len(set(published)) == len(published) == 2

    # The backend: the same servers and replicas as the gateways.
    args = list(backend["command"])
    assert sorted(server_urls(args[args.index("--nats") + 1])) == expected
    assert int(args[args.index("--replicas") + 1]) == replicas
    assert backend["image"] in {service["image"] for service in gateways.values()}

    # Prometheus: its configuration and every rule file it names, side by side; it scrapes the
    # gateways' admin port.
    prometheus_mounts = mounts(prometheus)
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert prometheus_mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS_CONFIG.resolve()
    for rule_file in config["rule_files"]:
        assert prometheus_mounts[f"/etc/prometheus/{rule_file}"] == (RULES_DIR / rule_file)
    assert "broker-alerts.yaml" in config["rule_files"]
    (job,) = config["scrape_configs"]
    targets = job["static_configs"][0]["targets"]
    assert sorted(targets) == sorted(f"{name}:{settings['admin']['port']}" for name in gateways)


def test_the_shipped_gateway_configuration_passes_the_checker() -> None:
    assert check_config(str(gateway_toml())) == []


def test_nats_server_accepts_the_shipped_configuration(tmp_path: Path) -> None:
    binary = require_tool("nats-server")
    for name, service in services("nats").items():
        result = subprocess.run(
            [binary, "-t", "-c", str(nats_conf())],
            env=dict(os.environ, **service["environment"]),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, (name, result.stdout + result.stderr)
    # Without its server name the node is refused: the variable is really read.
    result = subprocess.run(
        [binary, "-t", "-c", str(nats_conf())],
        env={k: v for k, v in os.environ.items() if k != "NATS_SERVER_NAME"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0


# -- a three-node cluster on loopback from the compose file's configuration -----------------------


@dataclass
class Node:
    name: str
    client: int
    cluster: int
    monitor: int
    store: Path
    proc: asyncio.subprocess.Process | None = None


def loopback_config(text: str, node: Node, nodes: list[Node]) -> str:
    """nats.conf with each host:port pair on 127.0.0.1 and the store in `node.store`; every
    other line (server name, JetStream limits, cluster name, lame duck, payload) kept."""
    head, marker, cluster = text.partition("\ncluster {")
    assert marker, "nats.conf has no cluster block"
    head, found = re.subn(
        r"^listen:\s*\S+", f"listen: 127.0.0.1:{node.client}", head, flags=re.MULTILINE
    )
    assert found == 1
    head, found = re.subn(
        r"^http:\s*\S+", f"http: 127.0.0.1:{node.monitor}", head, flags=re.MULTILINE
    )
    assert found == 1
    head, found = re.subn(
        r"^(\s*store_dir:)\s*\S+", rf"\g<1> {node.store}", head, flags=re.MULTILINE
    )
    assert found == 1
    cluster, found = re.subn(
        r"^(\s*listen:)\s*\S+", rf"\g<1> 127.0.0.1:{node.cluster}", cluster, flags=re.MULTILINE
    )
    assert found == 1
    by_name = {other.name: other for other in nodes}
    cluster, found = re.subn(
        r"nats-route://([\w.-]+):\d+",
        lambda m: f"nats-route://127.0.0.1:{by_name[m.group(1)].cluster}",
        cluster,
    )
    assert found == len(nodes)
    return head + marker + cluster


@dataclass
class Cluster:
    nodes: list[Node]
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{node.client}" for node in self.nodes)

    async def jsz(self, node: Node) -> dict[str, Any]:
        async with self.http.get(f"http://127.0.0.1:{node.monitor}/jsz") as response:
            body: dict[str, Any] = await response.json()
            return body

    async def meta_leader(self) -> str:
        """The JetStream meta leader once every node reports the same one, in a cluster of the
        compose file's size."""

        async def agreed() -> str:
            leaders = set()
            for node in self.nodes:
                with contextlib.suppress(aiohttp.ClientError):
                    meta = (await self.jsz(node)).get("meta_cluster") or {}
                    if meta.get("cluster_size") == len(self.nodes):
                        leaders.add(meta.get("leader") or "")
                        continue
                return ""
            return leaders.pop() if len(leaders) == 1 else ""

        return str(await poll(agreed, "a JetStream meta leader", DEPLOY_WAIT, every=0.2))

    def kill(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.returncode is None:
                os.kill(node.proc.pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def nats_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    binary = require_tool("nats-server")
    text = nats_conf().read_text()
    nodes = [
        Node(
            name=service["environment"]["NATS_SERVER_NAME"],
            client=free_port(),
            cluster=free_port(),
            monitor=free_port(),
            store=tmp_path / name,
        )
        for name, service in services("nats").items()
    ]
    async with contextlib.AsyncExitStack() as stack:
        for node in nodes:
            config = tmp_path / f"{node.name}.conf"
            config.write_text(loopback_config(text, node, nodes))
            node.proc = await stack.enter_async_context(
                child_process(
                    binary,
                    "-c",
                    str(config),
                    env=dict(os.environ, NATS_SERVER_NAME=node.name),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=(tmp_path / f"{node.name}.log").open("wb"),
                )
            )
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Cluster(nodes, http)


# -- gateway nodes and the example backend, as the compose file runs them -------------------------


@dataclass
class GatewayNode:
    url: str  # ws://127.0.0.1:PORT
    admin: str  # http://127.0.0.1:PORT
    proc: asyncio.subprocess.Process

    @property
    def target(self) -> str:
        return self.admin.removeprefix("http://")


async def start_gateway(stack: contextlib.AsyncExitStack, nats_url: str) -> GatewayNode:
    """A gateway process with the compose file's command and gateway.toml; only the listen
    addresses and the NATS URL come from the environment."""
    (service, *_) = services("gateway").values()
    command = [str(gateway_toml()) if arg.endswith(".toml") else arg for arg in service["command"]]
    env = {
        "OCPP_GATEWAY_HOST": "127.0.0.1",
        "OCPP_GATEWAY_PORT": "0",
        "OCPP_GATEWAY_ADMIN__PORT": "0",
        "OCPP_GATEWAY_UPSTREAM__URL": nats_url,
    }
    gateway = await stack.enter_async_context(
        gateway_process(*command, env=env, loopback=False, within=DEPLOY_WAIT)
    )
    admin = await gateway.wait_for_line(r"admin \(probes, metrics, API\) at (http://\S+)")
    return GatewayNode(gateway.url, admin.group(1), gateway.proc)


async def start_backend(stack: contextlib.AsyncExitStack, nats_url: str, db: Path) -> None:
    """The example backend with the compose file's arguments (servers and journal path
    replaced)."""
    (service,) = services("backend").values()
    args = list(service["command"])
    args[args.index("--nats") + 1] = nats_url
    args[args.index("--db") + 1] = str(db)
    entrypoint = list(service["entrypoint"])
    assert entrypoint[:2] == ["python", "-m"]
    proc = await stack.enter_async_context(
        child_process(
            sys.executable,
            *entrypoint[1:],
            *args,
            env=subprocess_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), DEPLOY_WAIT)
    assert b"broker backend ready" in line, line


async def ready(http: aiohttp.ClientSession, node: GatewayNode) -> bool:
    with contextlib.suppress(aiohttp.ClientError):
        async with http.get(f"{node.admin}/readyz") as response:
            body = await response.json()
            return response.status == 200 and body.get("brokers") == {"default": True}
    return False


class ChargePoint(ChargePoint16):  # type: ignore[misc]  # the ocpp library is untyped
    """An `ocpp` library 1.6 charge point (it only calls; nothing calls it here)."""


@contextlib.asynccontextmanager
async def charge_point(url: str, charge_point_id: str) -> AsyncIterator[ChargePoint]:
    """A connected 1.6 charge point of the `ocpp` library on `url`, reading its socket."""
    async with connect(f"{url}/ocpp/{charge_point_id}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        peer = ChargePoint(charge_point_id, ws, response_timeout=DEPLOY_WAIT)
        reader = asyncio.create_task(peer.start())
        try:
            yield peer
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


async def boot_and_start(peer: ChargePoint) -> tuple[Any, Any]:
    """Boot and start a transaction; returns both answers (a CALLERROR raises)."""
    boot = await peer.call(
        call16.BootNotification(
            charge_point_model="Deploy-Kit", charge_point_vendor="ocpp-gateway"
        ),
        suppress=False,
    )
    start = await peer.call(
        call16.StartTransaction(
            connector_id=1,
            id_tag=f"tag-{peer.id}",
            meter_start=100,
            timestamp="2026-01-01T00:00:00.000Z",
        ),
        suppress=False,
    )
    return boot, start


@pytest.mark.timeout(240)
async def test_a_cluster_from_the_compose_config_serves_two_gateway_nodes(
    tmp_path: Path,
) -> None:
    replicas = gateway_settings()["upstream"]["options"]["replicas"]
    async with contextlib.AsyncExitStack() as stack:
        cluster = await stack.enter_async_context(nats_cluster(tmp_path))
        leader = await cluster.meta_leader()
        assert leader in {node.name for node in cluster.nodes}

        # A stream with the gateways' replicas: placed on every node, a PubAck for a publish.
        nc = await nats.connect(
            servers=cluster.url.split(","), connect_timeout=DEPLOY_WAIT, reconnect_time_wait=0.2
        )
        stack.push_async_callback(nc.close)
        js = nc.jetstream(timeout=DEPLOY_WAIT)
        await js.add_stream(
            api.StreamConfig(
                name="DEPLOY_CHECK",
                subjects=["deploy.check"],
                storage=api.StorageType.FILE,
                num_replicas=replicas,
            )
        )
        ack = await js.publish("deploy.check", b"frame")
        assert ack.stream == "DEPLOY_CHECK" and ack.seq == 1

        async def placed() -> Any:
            info = await js.stream_info("DEPLOY_CHECK")
            cluster_info = info.cluster
            if cluster_info is None or not cluster_info.leader:
                return None
            peers = [cluster_info.leader] + [r.name for r in cluster_info.replicas or []]
            current = all(r.current for r in cluster_info.replicas or [])
            return info if current and len(peers) == replicas else None

        info = await poll(placed, "stream replicas current", DEPLOY_WAIT, every=0.2)
        assert info.config.num_replicas == replicas == len(cluster.nodes)
        assert info.state.messages == 1

        # Two gateway nodes and the example backend, as the compose file starts them.
        http = await stack.enter_async_context(aiohttp.ClientSession())
        gateways = [await start_gateway(stack, cluster.url) for _ in services("gateway")]
        for gateway in gateways:
            await poll(
                functools.partial(ready, http, gateway), "gateway ready", DEPLOY_WAIT, every=0.2
            )
        journal = tmp_path / "journal.sqlite"
        await start_backend(stack, cluster.url, journal)

        # An `ocpp` library charge point on each node is answered by the backend.
        peers = [
            await stack.enter_async_context(charge_point(gateway.url, f"DEPLOY-{i}"))
            for i, gateway in enumerate(gateways)
        ]
        answers = await asyncio.wait_for(asyncio.gather(*map(boot_and_start, peers)), DEPLOY_WAIT)
        for boot, start in answers:
            assert boot.status == "Accepted"
            assert start.id_tag_info["status"] == "Accepted"
            assert isinstance(start.transaction_id, int)
        assert started(journal) == ["DEPLOY-0", "DEPLOY-1"]

        # The gateways' layout got the configured replicas.
        options = NatsBroker().options  # the layout's default names
        for stream in (options.tx_stream, options.gen_stream, f"KV_{options.owner_bucket}"):
            assert (await js.stream_info(stream)).config.num_replicas == replicas, stream
        # Each charge point is owned, in the replicated bucket, by the node holding its socket:
        # two nodes, two owners.
        owners = await js.key_value(options.owner_bucket)
        holders = set()
        for peer in peers:
            entry = await owners.get(peer.id)
            holders.add(json.loads(entry.value or b"{}")["node"])
        assert len(holders) == 2, holders

        # The node leading the transaction stream dies: the two others keep a majority, elect
        # new leaders, and both gateways serve new charge points (replicas 3, any one lost).
        dead = (await js.stream_info(options.tx_stream)).cluster.leader  # type: ignore[union-attr]
        (victim,) = [node for node in cluster.nodes if node.name == dead]
        assert victim.proc is not None
        os.kill(victim.proc.pid, signal.SIGKILL)
        layout = (
            options.tx_stream,
            options.gen_stream,
            f"KV_{options.owner_bucket}",
            f"KV_{options.nodes_bucket}",
        )

        quick = nc.jetstream(timeout=2)

        async def new_leaders() -> bool:
            for stream in layout:
                try:
                    info = await quick.stream_info(stream)
                except (nats.errors.Error, TimeoutError):
                    return False
                if info.cluster is None or info.cluster.leader in (None, "", dead):
                    return False
            return True

        await poll(
            new_leaders, "new stream leaders without the killed node", DEPLOY_WAIT, every=0.2
        )
        for gateway in gateways:
            await poll(
                functools.partial(ready, http, gateway),
                "gateway ready again",
                DEPLOY_WAIT,
                every=0.2,
            )
        later = [
            await stack.enter_async_context(charge_point(gateway.url, f"DEPLOY-{i + 2}"))
            for i, gateway in enumerate(gateways)
        ]
        answers = await asyncio.wait_for(asyncio.gather(*map(boot_and_start, later)), DEPLOY_WAIT)
        for boot, start in answers:
            assert boot.status == "Accepted"
            assert start.id_tag_info["status"] == "Accepted"
        assert started(journal) == [f"DEPLOY-{i}" for i in range(4)]


def started(journal: Path) -> list[str]:
    """The charge points whose StartTransaction the example backend journaled."""
    with contextlib.closing(sqlite3.connect(journal)) as db:
        rows = db.execute("SELECT key FROM journal WHERE action = 'StartTransaction'")
        return sorted(json.loads(key)[0] for (key,) in rows)


# -- Prometheus scraping two gateway nodes on the cluster -----------------------------------------


def broker_alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(BROKER_ALERTS.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], t["expr"]) for panel in dashboard["panels"] for t in panel["targets"]]


def exported(text: str) -> set[str]:
    """Every sample name a /metrics text can hold, from its families (labelled families with no
    child yet count too: their name is in the text)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count"),
        }.get(family.type, ())
        names.update(family.name + suffix for suffix in suffixes)
    return names


def prometheus_config(tmp_path: Path, targets: list[str]) -> Path:
    """prometheus-broker.yml with its rule files made absolute, a 1 s interval and the
    gateways' loopback admin addresses as targets."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {
        "scrape_interval": f"{SCRAPE_SECONDS}s",
        "evaluation_interval": f"{SCRAPE_SECONDS}s",
    }
    config["rule_files"] = [str(RULES_DIR / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": targets}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


# What the issue asks the alerts and the dashboard to cover, by the metric that shows it.
COVERED = {
    "broker not ready": "ocpp_gateway_broker_connected",
    "publish latency": "ocpp_gateway_broker_publish_seconds_count",
    "unacknowledged frames": "ocpp_gateway_broker_publishing",
    "pending commands": "ocpp_gateway_broker_pending_commands",
    "ownership churn": "ocpp_gateway_broker_ownership_changes_total",
    "command outcomes": "ocpp_gateway_broker_commands_total",
}


def test_the_broker_alerts_and_dashboard_cover_the_broker_metrics() -> None:
    rules = broker_alert_rules()
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["alert"].startswith("OcppGatewayBroker"), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        # Per node and transport, so a notification says where.
        assert "by (instance, transport)" in rule["expr"], rule["alert"]
    in_alerts = {name for rule in rules for name in METRIC.findall(rule["expr"])}
    dashboard = json.loads(DASHBOARD.read_text())
    in_panels = {name for _, expr in dashboard_targets() for name in METRIC.findall(expr)}
    for what, metric in COVERED.items():
        assert metric in in_alerts, (what, metric)
        assert metric in in_panels, (what, metric)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    assert (
        dashboard["uid"] != json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())["uid"]
    )
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], panel["title"]


@pytest.mark.timeout(300)
async def test_prometheus_scrapes_two_gateway_nodes_on_the_cluster(tmp_path: Path) -> None:
    prometheus_binary = require_tool("prometheus")
    async with contextlib.AsyncExitStack() as stack:
        cluster = await stack.enter_async_context(nats_cluster(tmp_path))
        await cluster.meta_leader()
        http = await stack.enter_async_context(aiohttp.ClientSession())
        gateways = [await start_gateway(stack, cluster.url) for _ in services("gateway")]
        for gateway in gateways:
            await poll(
                functools.partial(ready, http, gateway), "gateway ready", DEPLOY_WAIT, every=0.2
            )
        await start_backend(stack, cluster.url, tmp_path / "journal.sqlite")
        targets = [gateway.target for gateway in gateways]

        # Every metric the broker alerts and the dashboard name is in a live scrape.
        for gateway in gateways:
            async with http.get(f"{gateway.admin}/metrics") as response:
                names = exported(await response.text())
            used = {name for rule in broker_alert_rules() for name in METRIC.findall(rule["expr"])}
            used |= {name for _, expr in dashboard_targets() for name in METRIC.findall(expr)}
            assert used, "no metric found in the alerts and dashboard"
            assert used <= names, sorted(used - names)

        prom_port = free_port()
        await stack.enter_async_context(
            child_process(
                prometheus_binary,
                f"--config.file={prometheus_config(tmp_path, targets)}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=(tmp_path / "prometheus.log").open("wb"),
            )
        )
        prom = Prometheus(f"http://127.0.0.1:{prom_port}", http)

        async def prometheus_ready() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{prom.url}/-/ready") as response:
                    return response.status == 200
            return False

        await prom.poll("prometheus ready", prometheus_ready, bool)

        stats = FleetStats()
        stop = asyncio.Event()
        fleets = [
            asyncio.create_task(
                run_fleet(
                    f"{gateway.url}/ocpp",
                    [f"PROM-{n}-{i}" for i in range(FLEET_SIZE)],
                    PROFILE.with_version("ocpp1.6"),
                    stats=stats,
                    stop=stop,
                    seed=11,
                )
            )
            for n, gateway in enumerate(gateways)
        ]
        try:
            # The dashboard's instance variable, from its own label_values() query.
            async def instances() -> list[str]:
                found: list[str] = await prom.api(
                    "label/instance/values", **{"match[]": "ocpp_gateway_broker_connected"}
                )
                return found

            assert sorted(await prom.poll("instances", instances, lambda v: len(v) == 2)) == (
                sorted(targets)
            )
            variables = {
                "__rate_interval": grafana_rate_interval(SCRAPE_SECONDS, SCRAPE_SECONDS),
                "__interval": f"{SCRAPE_SECONDS}s",
                "instance": grafana_regex_value(targets),
            }
            panels = [(title, substitute(expr, variables)) for title, expr in dashboard_targets()]

            def panel(results: dict[str, Any], title_part: str) -> dict[str, float]:
                (expr,) = [e for title, e in panels if title_part in title][:1]
                return {
                    sample["metric"].get("instance", ""): float(sample["value"][1])
                    for sample in results[expr]
                }

            async def panel_results() -> dict[str, list[dict[str, Any]]]:
                return {expr: await prom.query(expr) for _, expr in panels}

            def busy(results: dict[str, list[dict[str, Any]]]) -> bool:
                # Every panel on the broker's own series shows both nodes; both publish.
                for _, expr in panels:
                    only_broker = all(
                        name.startswith("ocpp_gateway_broker_") for name in METRIC.findall(expr)
                    )
                    if only_broker and "by (status)" not in expr and len(results[expr]) != 2:
                        return False
                published = panel(results, "Frames published")
                links = panel(results, "Charge point links")
                return (
                    sorted(published) == sorted(targets)
                    and all(rate > 0 for rate in published.values())
                    and sum(links.values()) == 2 * FLEET_SIZE
                )

            results = await prom.poll("both nodes publishing", panel_results, busy)
            for title, expr in panels:
                for value in values(results[expr]):
                    assert math.isnan(value) or (math.isfinite(value) and value >= 0), (
                        title,
                        expr,
                        value,
                    )
            assert panel(results, "Broker ready") == dict.fromkeys(targets, 1.0)
            latency = panel(results, "Publish latency")
            assert sorted(latency) == sorted(targets)
            # Loopback, three replicas: an acknowledgement takes well under a second.
            assert all(0 < value < 1 for value in latency.values()), latency
            assert sum(panel(results, "Publish failures").values()) == 0
            outcomes = next(results[e] for title, e in panels if "Command outcomes" in title)
            assert {s["metric"]["status"] for s in outcomes} == {
                "ok",
                "callerror",
                "offline",
                "busy",
                "timeout",
                "rejected",
            }

            # Every broker alert expression runs, and none holds on a healthy pair of nodes.
            for rule in broker_alert_rules():
                assert await prom.query(rule["expr"]) == [], rule["alert"]

            # Prometheus itself evaluated both rule files without an error.
            evaluated = await prom.evaluated_rules()
            names = {r["name"] for r in evaluated}
            assert {rule["alert"] for rule in broker_alert_rules()} <= names
            assert "OcppGatewayDown" in names  # alerts.yaml, loaded beside them
            assert all(r["state"] == "inactive" for r in evaluated), evaluated

            # The whole NATS cluster goes: both nodes report their broker not ready.
            cluster.kill()
            not_ready = next(
                r["expr"] for r in broker_alert_rules() if r["alert"] == "OcppGatewayBrokerNotReady"
            )
            result = await prom.poll(
                "OcppGatewayBrokerNotReady holds",
                lambda: prom.query(not_ready),
                lambda r: len(r) == 2,
            )
            assert sorted((s["metric"]["instance"], s["metric"]["transport"]) for s in result) == (
                sorted((target, "default") for target in targets)
            )
            # ... and the panel of charge points turned away shows the sockets closed (1013).
            turned_away = next(e for title, e in panels if "turned away" in title)
            closed = await prom.poll(
                "sockets closed for the lost broker",
                lambda: prom.query(turned_away),
                lambda r: sum(values(r)) > 0,
            )
            assert {s["metric"]["instance"] for s in closed} <= set(targets)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*fleets, return_exceptions=True), DEPLOY_WAIT)


# -- Kubernetes -----------------------------------------------------------------------------------


def quantity(text: str) -> int:
    """A Kubernetes binary quantity ("20Gi") in bytes."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)", text)
    assert match is not None, text
    unit: int = 1024 ** "_KMGT".index(match.group(2)[0])
    return int(match.group(1)) * unit


def test_the_kubernetes_manifests_and_the_nats_chart_values(tmp_path: Path) -> None:
    manifests = check_gateway_manifests(KUBERNETES, tmp_path)
    settings = manifests["settings"]
    dialled = settings["upstream"]["url"]
    # The same settings as the compose file's gateways, but for the cluster's NATS Service.
    compose_settings = gateway_settings()
    for shipped in (settings, compose_settings):
        shipped["upstream"].pop("url")
    assert settings == compose_settings
    (deployment,) = manifests["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert (
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        > (settings["drain_timeout"])
    )
    (pdb,) = manifests["PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]

    # The NATS cluster of the Helm chart's values: as large as the gateways' replicas, with
    # JetStream on files, room for both streams, and the Service name the gateways dial.
    chart = yaml.safe_load(HELM_VALUES.read_text())
    config = chart["config"]
    options = settings["upstream"]["options"]
    assert config["cluster"]["enabled"] is True
    assert config["cluster"]["replicas"] == options["replicas"] == 3
    assert config["jetstream"]["enabled"] is True
    assert config["jetstream"]["fileStore"]["enabled"] is True
    assert config["jetstream"]["memoryStore"]["enabled"] is False
    assert 2 * options["max_bytes"] < quantity(config["jetstream"]["fileStore"]["pvc"]["size"])
    assert chart["podDisruptionBudget"]["enabled"] is True
    ((host, port),) = server_urls(dialled)
    service, namespace, *rest = host.split(".")
    assert service == chart["fullnameOverride"]
    assert rest == ["svc", "cluster", "local"]
    assert port == 4222  # the chart's config.nats.port, left at its default
    # The install command written in the values file uses that namespace and this file.
    header = HELM_VALUES.read_text()
    assert f"--namespace {namespace}" in header
    assert "deploy/kubernetes/broker/helm/nats-values.yaml" in header
    # The image has the nats extra (the compose file builds it the same way).
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith("-nats")
