"""Configuration: TOML, then OCPP_GATEWAY_* environment, then flags; every error with its key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ocpp_gateway.config import GatewayConfig, PluginsConfig, load_config
from ocpp_gateway.errors import ConfigError, PluginError
from ocpp_gateway.preflight import check_config
from ocpp_gateway.security.config import SecurityConfig

TOML = """
port = 9100
call_timeout = 30

[upstream]
url = "ws://csms.example:9000/ocpp"
username = "gw"
password = "secret"

[validation]
default = "enforce"
overrides = { "DataTransfer" = "off", "MeterValues:cp_to_csms" = "observe" }
models = { "Wallbox X" = { default = "observe" } }

[security]
max_message_bytes = 65536
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_are_frozen_and_sane() -> None:
    cfg = load_config(env={})
    assert cfg == GatewayConfig()
    assert cfg.upstream.url is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.port = 1  # type: ignore[misc]


def test_toml_then_env_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, TOML)
    cfg = load_config(path, env={})
    assert cfg.port == 9100
    assert cfg.call_timeout == 30.0
    assert cfg.upstream.password == "secret"
    assert cfg.validation.overrides["DataTransfer"] == "off"
    assert cfg.validation.models == {"Wallbox X": {"default": "observe"}}
    assert cfg.security.max_message_bytes == 65536

    env = {
        "OCPP_GATEWAY_PORT": "9200",
        "OCPP_GATEWAY_UPSTREAM_URL": "ws://env.example/ocpp",
        "OCPP_GATEWAY_SECURITY__MAX_MESSAGE_BYTES": "1000",
        "OCPP_GATEWAY_PLUGINS_ENABLED": "block_commands, route_by_action",
        "UNRELATED": "x",
    }
    cfg = load_config(path, env=env)
    assert cfg.port == 9200
    assert cfg.upstream.url == "ws://env.example/ocpp"
    assert cfg.upstream.username == "gw"  # untouched keys keep the file's value
    assert cfg.security.max_message_bytes == 1000
    assert cfg.plugins.enabled == ("block_commands", "route_by_action")

    cfg = load_config(path, env=env, overrides={"port": 9300, "upstream.url": None})
    assert cfg.port == 9300
    assert cfg.upstream.url == "ws://env.example/ocpp"  # None flags are ignored


def test_every_error_is_reported_with_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
port = "abc"
workers = 0
colour = "blue"
[upstream]
url = "http://nope"
[validation]
default = "strict"
overrides = { Heartbeat = "sometimes" }
[security]
takeover = "always"
""",
    )
    errors = check_config(path)
    joined = "\n".join(errors)
    for key in (
        "port:",
        "workers:",
        "colour: unknown setting",
        "upstream.url:",
        "validation.default:",
        "validation.overrides.Heartbeat:",
        "security.takeover:",
    ):
        assert key in joined, (key, errors)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert len(info.value.errors) == len(errors)


def test_bad_env_values_are_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"OCPP_GATEWAY_PORT": "x", "OCPP_GATEWAY_NO_SUCH": "1"})
    assert any(e.startswith("port:") for e in info.value.errors)
    assert any(e.startswith("OCPP_GATEWAY_NO_SUCH:") for e in info.value.errors)


def test_the_preflight_is_not_part_of_the_configuration() -> None:
    """The configuration is a leaf: the checks that need the gateway's machinery live in
    `preflight`, not under `ocpp_gateway.config`."""
    from ocpp_gateway import config

    assert not hasattr(config, "check_config")


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    assert "invalid TOML" in check_config(write(tmp_path, "port = = 1"))[0]
    assert "cannot read" in check_config(str(tmp_path / "missing.toml"))[0]


def test_check_config_checks_plugins(tmp_path: Path) -> None:
    path = write(tmp_path, '[plugins]\nenabled = ["no_such_plugin"]\n')
    errors = check_config(path)
    assert len(errors) == 1
    assert errors[0].startswith("plugins:")
    assert check_config(write(tmp_path, TOML)) == []


def test_config_is_deeply_immutable(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, TOML), env={})
    with pytest.raises(TypeError):
        cfg.validation.models["Other"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.validation.models["Wallbox X"]["default"] = "off"  # type: ignore[index]
    # Built in code with lists and dicts, a config is frozen all the same.
    direct = PluginsConfig(enabled=["a"], options={"a": {"x": [1]}})  # type: ignore[arg-type]
    assert direct.enabled == ("a",)
    assert direct.options["a"]["x"] == (1,)
    with pytest.raises(TypeError):
        direct.options["b"] = {}  # type: ignore[index]
    security = SecurityConfig(pinned_profiles={"CP-1": 3})
    with pytest.raises(TypeError):
        security.pinned_profiles["CP-2"] = 1  # type: ignore[index]


def test_check_config_reports_what_serve_would_refuse(tmp_path: Path) -> None:
    """Security settings (files included) and plugin Forward targets are checked too."""
    path = write(
        tmp_path,
        f"""
[security]
client_ca = "{tmp_path / "ca.pem"}"
pinned_profiles = {{ "CP-1" = 7 }}
[plugins]
enabled = ["route_by_action"]
[plugins.options.route_by_action]
routes = {{ Authorize = "billing" }}
""",
    )
    errors = check_config(path)
    joined = "\n".join(errors)
    assert "security.client_ca:" in joined
    assert "security.pinned_profiles.CP-1:" in joined
    # The same errors stop `serve` while it loads the configuration.
    with pytest.raises(ConfigError):
        load_config(path, env={})
    # Once the settings are consistent, files that cannot be loaded are reported ...
    missing = tmp_path / "missing-credentials.toml"
    path = write(
        tmp_path,
        f"""
[security]
credentials_file = "{missing}"
[plugins]
enabled = ["route_by_action"]
[plugins.options.route_by_action]
routes = {{ Authorize = "billing" }}
""",
    )
    errors = check_config(path)
    assert any(e.startswith("security.credentials_file:") for e in errors), errors
    # ... and so is a Forward to a transport that is not configured (serve refuses it too).
    assert any(e.startswith("plugins:") and "'billing'" in e for e in errors), errors
    with pytest.raises(PluginError):
        build_chain_and_check(path)


def build_chain_and_check(path: str) -> None:
    from ocpp_gateway.runtime import Runtime

    cfg = load_config(path, env={}, overrides={"security.credentials_file": ""})
    Runtime(cfg)


def test_forward_to_a_configured_transport_is_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[transports.billing]
type = "websocket"
url = "ws://billing.internal:9100/ocpp"
[plugins]
enabled = ["route_by_action"]
[plugins.options.route_by_action]
routes = { Authorize = "billing" }
""",
    )
    assert check_config(path) == []


def test_numbers_from_every_source() -> None:
    cfg = load_config(env={"OCPP_GATEWAY_CALL_TIMEOUT": " 2.5 ", "OCPP_GATEWAY_PORT": "9001"})
    assert (cfg.call_timeout, cfg.port) == (2.5, 9001)
    assert load_config(env={}, overrides={"call_timeout": 3}).call_timeout == 3.0
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides={"port": 1.5, "workers": True, "call_timeout": "soon"})
    assert sorted(e.split(":")[0] for e in info.value.errors) == ["call_timeout", "port", "workers"]


def test_transport_tables_become_their_typed_options(tmp_path: Path) -> None:
    from ocpp_gateway.transports import LocalOptions, WebSocketOptions

    path = write(
        tmp_path,
        """
[transports.billing]
type = "websocket"
url = "ws://127.0.0.1:9/csms"
compress = false
connect_timeout = 2.5

[transports.lab]
type = "local"
allowed_id_tags = ["T1", "T2"]
accept_all = false
""",
    )
    cfg = load_config(path, env={})
    assert cfg.transports["billing"] == WebSocketOptions(
        "ws://127.0.0.1:9/csms", compress=False, connect_timeout=2.5
    )
    assert cfg.transports["lab"] == LocalOptions(accept_all=False, allowed_id_tags=("T1", "T2"))
    assert set(cfg.transport_options()) == {"default", "billing", "lab"}
    assert isinstance(cfg.transport_options()["default"], LocalOptions)


def test_transport_tables_are_checked_by_their_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[transports.a]
type = "websocket"
url = "ws://127.0.0.1:9/csms"
compress = "maybe"

[transports.b]
type = "websocket"

[transports.c]
type = "websocket"
url = "http://127.0.0.1:9/csms"
connect_timeout = -1

[transports.d]
type = "pigeon"

[transports.e]
type = "local"
heartbeat_interval = 0
colour = "blue"
""",
    )
    errors = check_config(path)
    expected = [
        "transports.a.compress: expected a boolean, got 'maybe'",
        "transports.b.url: required",
        "transports.c.url: expected ws://host[:port]/path or wss://..., got http",
        "transports.c.connect_timeout: must be positive",
        "transports.d.type: expected 'local' or 'nats' or 'redis_streams' or 'websocket', "
        "got 'pigeon'",
        "transports.e.colour: unknown setting",
    ]
    for error in expected:
        assert error in errors, (error, errors)


def test_transports_and_routing_do_not_import_the_configuration() -> None:
    """The loader depends on the transports and the plugin API, never the reverse."""
    import ast

    package = Path(__file__).resolve().parents[1] / "python" / "ocpp_gateway"
    for directory in ("transports", "routing"):
        for source in (package / directory).glob("*.py"):
            tree = ast.parse(source.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    assert node.module != "ocpp_gateway.config", source
                elif isinstance(node, ast.Import):
                    assert all(a.name != "ocpp_gateway.config" for a in node.names), source


def test_a_fixed_node_id_is_refused_for_several_workers() -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(None, {}, {"node_id": "edge-1", "workers": 2})
    assert refused.value.errors[0].startswith("node_id: one id for several workers")
    assert load_config(None, {}, {"node_id": "edge-1", "workers": 1}).node_id == "edge-1"


def test_values_of_the_wrong_toml_type_are_refused_with_their_key(tmp_path: Path) -> None:
    """A quoted number or boolean in the file is an error (issue 18 item 4); the same text in
    an environment variable is parsed, as variables have no other way to spell a number."""
    path = write(
        tmp_path,
        """
port = "9000"
metrics_on_main_port = "true"
trusted_proxies = "10.0.0.0/8"
[security]
idle_timeout = "300"
pinned_profiles = '{"CP-1": 1}'
""",
    )
    errors = check_config(path)
    unquote = " (TOML: a quoted value is a string; write it without quotes)"
    assert errors == [
        f"port: expected an integer, got '9000'{unquote}",
        f"metrics_on_main_port: expected a boolean, got 'true'{unquote}",
        'trusted_proxies: expected a list, got \'10.0.0.0/8\' (TOML: a list is written ["a", "b"])',
        f"security.idle_timeout: expected a number, got '300'{unquote}",
        "security.pinned_profiles: expected a table, got '{\"CP-1\": 1}' (TOML: a table is "
        "written { key = value })",
    ]
    with pytest.raises(ConfigError) as refused:
        load_config(path, env={})
    assert refused.value.errors == errors
    env = {
        "OCPP_GATEWAY_PORT": "9000",
        "OCPP_GATEWAY_METRICS_ON_MAIN_PORT": "true",
        "OCPP_GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8",
        "OCPP_GATEWAY_SECURITY__IDLE_TIMEOUT": "300",
    }
    cfg = load_config(env=env)
    assert (cfg.port, cfg.metrics_on_main_port) == (9000, True)
    assert cfg.trusted_proxies == ("10.0.0.0/8",)
    assert cfg.security.idle_timeout == 300.0
    assert type(load_config(env={"OCPP_GATEWAY_HOST": "127.0.0.1"}).host) is str


def test_out_of_range_numbers_are_refused_with_their_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
port = 65536
drain_timeout = -1
workers = -2
call_timeout = inf
[upstream]
connect_timeout = nan
[security]
idle_timeout = -5
max_connections = -1
message_rate = -0.5
auth_workers = 0
[admin]
port = -80
[validation]
violation_log_entries = -3
""",
    )
    errors = check_config(path)
    assert sorted(errors) == sorted(
        [
            "port: 65536 is not a TCP port (0-65535)",
            "drain_timeout: must not be negative, got -1.0",
            "workers: must not be negative, got -2",
            "call_timeout: must be a finite number, got inf",
            "upstream.connect_timeout: must be a finite number, got nan",
            "security.idle_timeout: must not be negative, got -5.0",
            "security.max_connections: must not be negative, got -1",
            "security.message_rate: must not be negative, got -0.5",
            "security.auth_workers: must be at least 1, got 0",
            "admin.port: -80 is not a TCP port (0-65535)",
            "validation.violation_log_entries: must not be negative, got -3",
        ]
    ), errors
    with pytest.raises(ConfigError) as refused:
        load_config(path, env={})
    assert sorted(refused.value.errors) == sorted(errors)
    # The same rules hold for values from the environment and from flags.
    with pytest.raises(ConfigError) as refused:
        load_config(env={"OCPP_GATEWAY_SECURITY__IDLE_TIMEOUT": "-5"}, overrides={"port": 70000})
    assert sorted(refused.value.errors) == [
        "port: 70000 is not a TCP port (0-65535)",
        "security.idle_timeout: must not be negative, got -5.0",
    ]
    # Zero stays valid where it means "off" or "any port".
    cfg = load_config(env={}, overrides={"port": 0, "security.idle_timeout": 0, "admin.port": 0})
    assert (cfg.port, cfg.security.idle_timeout, cfg.admin.port) == (0, 0.0, 0)


def test_misspelled_keys_get_the_closest_real_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
prot = 9000
colour = "blue"
[securty]
idle_timeout = 5
[validation]
defualt = "observe"
[transports.billing]
type = "websocket"
urll = "ws://billing.internal:9100/ocpp"
""",
    )
    errors = check_config(path)
    for expected in (
        "prot: unknown setting (did you mean port?)",
        "colour: unknown setting",
        "securty: unknown setting (did you mean security?)",
        "validation.defualt: unknown setting (did you mean validation.default?)",
        "transports.billing.urll: unknown setting (did you mean transports.billing.url?)",
    ):
        assert expected in errors, (expected, errors)
    assert "colour: unknown setting" in errors  # nothing close: no suggestion


def test_serve_and_check_config_refuse_a_wrong_type_and_a_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ocpp_gateway.cli import main

    path = write(tmp_path, 'port = "9000"\n[security]\nidle_timeout = -5\n')
    expected = [
        "error: port: expected an integer, got '9000' (TOML: a quoted value is a string; write "
        "it without quotes)",
        "error: security.idle_timeout: must not be negative, got -5.0",
    ]
    assert main(["check-config", path]) == 1
    assert capsys.readouterr().out.splitlines()[:2] == expected
    # serve stops before it listens on anything (exit 2: a configuration error).
    assert main(["serve", "--config", path, "--host", "127.0.0.1"]) == 2
    assert capsys.readouterr().err.splitlines() == expected
