"""Gateway configuration: frozen dataclasses loaded from TOML, then OCPP_GATEWAY_* env, then flags.

The loader is generic: it walks the dataclass fields and their type hints, so a field added to
any section (for example `SecurityConfig`) is read from every source without a loader change.

Environment variables name a key path in upper case, sections joined by `_` or `__`:
`OCPP_GATEWAY_PORT=9000`, `OCPP_GATEWAY_UPSTREAM_URL=ws://csms:9000/ocpp`,
`OCPP_GATEWAY_SECURITY__MAX_MESSAGE_BYTES=65536`. Lists are comma-separated; tables are JSON.
A variable with the prefix that names no setting is an error (with the closest real name).
`settings_reference()` lists every setting for the README's table (`settings_table`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import ipaddress
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from ocpp_gateway.capture.config import CaptureConfig, check_capture_config
from ocpp_gateway.errors import ConfigError, PluginError
from ocpp_gateway.routing import build_chain, check_forward_targets
from ocpp_gateway.security import check_security
from ocpp_gateway.security.config import SecurityConfig, check_security_config
from ocpp_gateway.transports import DEFAULT_TRANSPORT, transport_types
from ocpp_gateway.transports.local import LocalOptions
from ocpp_gateway.transports.websocket import PLACEHOLDER as UPSTREAM_PLACEHOLDER
from ocpp_gateway.transports.websocket import WebSocketOptions

__all__ = [
    "ENV_PREFIX",
    "AdminConfig",
    "GatewayConfig",
    "LocalConfig",
    "PluginsConfig",
    "Setting",
    "UpstreamConfig",
    "ValidationConfig",
    "build_section",
    "check_config",
    "frozen",
    "load_config",
    "settings_reference",
    "token_problems",
]

ENV_PREFIX = "OCPP_GATEWAY_"
_MODES = ("enforce", "observe", "off")
_DIRECTIONS = ("cp_to_csms", "csms_to_cp")
_LOG_LEVELS = ("debug", "info", "warning", "error")
_UPSTREAM_SCHEMES = {
    "websocket": ("ws", "wss"),
    "nats": ("nats", "tls"),
    "redis_streams": ("redis", "rediss", "unix"),
}
_T = TypeVar("_T")


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


def frozen(value: object) -> Any:
    """A deeply immutable copy of a configuration value: lists become tuples and tables
    read-only mappings (`types.MappingProxyType`), recursively.

    Args:
        value: a value read from TOML, the environment or a flag, or given in code.

    Returns:
        The frozen value; scalars and dataclasses are returned as they are.
    """
    if isinstance(value, list | tuple):
        return tuple(frozen(item) for item in value)
    if isinstance(value, Mapping):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    return value


def _freeze_fields(instance: Any) -> None:
    """Freeze the list and table fields of a frozen dataclass built directly in code."""
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if isinstance(value, list | dict):
            object.__setattr__(instance, f.name, frozen(value))


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """The `[upstream]` table: the default backend every charge point is relayed to.

    Attributes:
        type: "websocket" (a CSMS), "nats" (NATS JetStream) or "redis_streams" (Redis).
        url: for "websocket" the CSMS URL (ws:// or wss://): the gateway opens
            `url/{charge_point_id}`, or, where the URL contains the placeholder
            `{charge_point_id}`, the URL with the id in its place
            (`ws://csms/ocpp/{charge_point_id}/`); for "nats" `nats://host:4222`; for
            "redis_streams" `redis://host:6379/0`. None means no upstream: the embedded local
            responder answers the charge points.
        username, password: credentials sent to the CSMS (HTTP Basic) or the broker (never
            logged). For a CSMS with an empty `username`, the charge point id is the user name.
        connect_timeout: seconds allowed to open the upstream link (or reach the broker).
        compress: offer permessage-deflate to the CSMS ("websocket" only; the link then uses
            aiohttp's client).
        client: the WebSocket client of the upstream links ("websocket" only): "picows"
            (leaner per frame) or "aiohttp".
        options: the broker transport's own settings (`[upstream.options]`), see
            `NatsOptions`, `RedisStreamsOptions` and docs/brokers.md.
    """

    type: Literal["websocket", "nats", "redis_streams"] = "websocket"
    url: str | None = None
    username: str | None = None
    password: str | None = None
    connect_timeout: float = 10.0
    compress: bool = False
    client: Literal["picows", "aiohttp"] = "picows"
    options: Mapping[str, object] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        _freeze_fields(self)


@dataclass(frozen=True, slots=True)
class ValidationConfig:
    """The `[validation]` table: how strictly payloads are checked (maps onto `_core.Policy`).

    Attributes:
        default: "enforce", "observe" or "off".
        overrides: keys are an action, a direction or "Action:direction"; values are modes.
        versions: per OCPP version ("ocpp1.6", ...), a table with an optional "default" and
            overrides; it replaces the global default and adds to the global overrides.
        models: per charge point model (BootNotification chargePointModel /
            chargingStation.model), a table with an optional "default", overrides, and an
            optional "relax" table, applied on top of the version policy from the first
            BootNotification that names the model (that BootNotification included, valid or
            not). `relax` maps "Action.member.member" (or "ActionResponse.member") to a table
            of relaxations: `max_length = N`, `extra_enum = [..]`, `min_items = N`,
            `allow_property = true`, `extra_types = [..]` (see `ocpp_gateway.model_rules`).
        schema_dirs: extra directories of schemas (vendor DataTransfer payloads, errata), one
            subdirectory per version: `<dir>/ocpp1.6/`, `<dir>/ocpp2.0.1/`, `<dir>/ocpp2.1/`.
        violation_log: a JSON file the gateway rewrites (about once a second, when it changed)
            with the bounded log of payload violations, for `ocpp-gateway violations`; None
            keeps no log.
        violation_log_entries: the most distinct (model, firmware, version, action, path,
            keyword) entries the log keeps; further ones are dropped and counted.
    """

    default: Literal["enforce", "observe", "off"] = "enforce"
    overrides: Mapping[str, str] = field(default_factory=_empty)
    versions: Mapping[str, Mapping[str, str]] = field(default_factory=_empty)
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)
    schema_dirs: tuple[str, ...] = ()
    violation_log: str | None = None
    violation_log_entries: int = 1000

    def __post_init__(self) -> None:
        _freeze_fields(self)


LocalConfig = LocalOptions
"""The `[local]` table: the embedded responder used when no upstream is configured (the local
transport's own options class, `transports.local.LocalOptions`)."""


@dataclass(frozen=True, slots=True)
class PluginsConfig:
    """The `[plugins]` table.

    Attributes:
        enabled: plugin names from the `ocpp_gateway.plugins` entry-point group, in chain order.
        options: per plugin name, the table of settings given to its constructor.
    """

    enabled: tuple[str, ...] = ()
    options: Mapping[str, Mapping[str, object]] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        _freeze_fields(self)


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The `[admin]` table: a second listener for operators (`/metrics`, `/healthz`, `/readyz`
    and the charge point API), apart from the charge point port.

    Attributes:
        host: the address it listens on; loopback by default (set "0.0.0.0" for probes and
            scrapes from other hosts, and see the README on exposing it).
        port: its port; none (the default) means no admin listener, 0 picks a free port.
        tls_cert, tls_key: PEM files; when both are set it serves https (plain http otherwise).
        token: bearer token of the API (`/charge-points`), at least 16 characters, no
            whitespace or control characters, at least 6 different characters; never logged
            (`OCPP_GATEWAY_ADMIN_TOKEN`); none means the API is off (404).
        idle_timeout: seconds a connection may wait for a complete request head, idle between
            requests or sending headers slowly; then it is closed.
        body_timeout: seconds a request may take to send its body (408 after).
        max_connections: TCP connections it holds at once; more get 503 and are closed.
        max_connections_per_ip: TCP connections it holds at once from one client address
            (so one client cannot take every place, the probes' included); 0: no such cap.
        token_failures_per_minute: wrong or missing tokens allowed per client address per
            minute (as a burst, refilled evenly); over it, every API request of that address
            gets 429 without the token being checked. 0 disables.
    """

    host: str = "127.0.0.1"
    port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    token: str | None = None
    idle_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 64
    max_connections_per_ip: int = 16
    token_failures_per_minute: int = 10


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The whole gateway configuration. Immutable; built once by `load_config`.

    Attributes:
        host, port: where charge points connect (port 0 picks a free one).
        upstream: the CSMS link.
        validation: the validation policy.
        call_timeout: seconds a CALL may wait for its answer before it is forgotten and counted.
        plugins: routing plugins.
        transports: extra named transports a plugin may forward to: name -> the typed options
            of its transport type (a `[transports.<name>]` table with a "type", "websocket"
            or "local", and that type's settings, is converted by the loader).
        local: the embedded local responder.
        workers: processes sharing the port (SO_REUSEPORT).
        drain_timeout: seconds a SIGTERM waits for pending calls before closing sockets.
        log_level: "debug", "info", "warning" or "error".
        log_format: "json" (one object per line on stderr) or "text" (one readable line).
        security: authentication, TLS, takeover and limits.
        node_id: this gateway process's id on a broker (subjects, ownership entries); None
            means host name and process id, so each worker of `serve` is its own node.
        admin: the admin listener and its API.
        metrics_on_main_port: also serve `/metrics`, `/healthz` and `/readyz` on the charge
            point port (false is recommended once the admin listener is used).
        trusted_proxies: CIDR blocks of load balancers whose PROXY protocol header and
            X-Forwarded-For header are believed (empty: none is).
        proxy_protocol: connections from `trusted_proxies` must begin with a PROXY protocol
            header (v1 or v2) giving the charge point's address; others are served as they are.
        capture: per charge point capture in the Open OCPP Trace format (`[capture]`).
    """

    host: str = "0.0.0.0"
    port: int = 9000
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    call_timeout: float = 60.0
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    transports: Mapping[str, Any] = field(default_factory=_empty)
    local: LocalConfig = field(default_factory=LocalConfig)
    workers: int = 1
    drain_timeout: float = 10.0
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    security: SecurityConfig = field(default_factory=SecurityConfig)
    node_id: str | None = None
    admin: AdminConfig = field(default_factory=AdminConfig)
    metrics_on_main_port: bool = True
    trusted_proxies: tuple[str, ...] = ()
    proxy_protocol: bool = False
    capture: CaptureConfig = field(default_factory=CaptureConfig)

    def __post_init__(self) -> None:
        _freeze_fields(self)

    def backends(self) -> Mapping[str, Any]:
        """The typed options of every transport: "default" (the `[upstream]` backend when
        `upstream.url` is set, a CSMS or a broker by `upstream.type`, else the `[local]`
        responder), then the named ones.

        Raises:
            ConfigError: a setting of a transport that does not convert or check.
        """
        errors: list[str] = []
        default = _default_backend(self, errors)
        named = {
            name: (
                _transport_options(name, value, errors, self.node_id)
                if isinstance(value, Mapping)
                else value
            )
            for name, value in self.transports.items()
        }
        if errors:
            raise ConfigError(errors)
        return MappingProxyType({DEFAULT_TRANSPORT: default, **named})


def _default_backend(cfg: GatewayConfig, errors: list[str]) -> Any:
    """The options of the default backend (None, with errors, when they do not convert)."""
    up = cfg.upstream
    if not up.url:
        return cfg.local
    if up.type == "websocket":
        return WebSocketOptions(
            up.url,
            username=up.username,
            password=up.password,
            connect_timeout=up.connect_timeout,
            compress=up.compress,
            client=up.client,
        )
    table: dict[str, Any] = {"url": up.url, "connect_timeout": up.connect_timeout}
    if up.username is not None:
        table["username"] = up.username
    if up.password is not None:
        table["password"] = up.password
    table.update(up.options)
    # The url is checked as `upstream.url` with the other [upstream] keys (_check_values).
    return _typed_options(up.type, "upstream.options", table, errors, cfg.node_id, check=False)


def build_section(cls: type[_T], table: Mapping[str, Any], prefix: str) -> _T:
    """Build a frozen settings dataclass (a transport's options) from a table, with the same
    conversions as the configuration loader.

    Args:
        cls: the dataclass.
        table: raw values (TOML, JSON, or already typed).
        prefix: the key path reported in errors ("upstream.options").

    Returns:
        The instance.

    Raises:
        ConfigError: listing every unknown or invalid key.
    """
    errors: list[str] = []
    built: _T = _build(cls, table, prefix, errors)
    if errors:
        raise ConfigError(errors)
    return built


# ---------------------------------------------------------------------------------------------
# Generic conversion of raw values (TOML, environment strings, flags) into typed dataclasses.


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any, key: str, errors: list[str]) -> Any:
    """Convert `value` to the type `tp`; on failure append an error and return None."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return frozen(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        table = _table(value, key, errors)
        return None if table is None else _build(tp, table, key, errors)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or value == ""):
            return None
        arms = [a for a in args if a is not type(None)]
        last: list[str] = []
        for arm in arms:
            attempt: list[str] = []
            result = _convert(arm, value, key, attempt)
            if not attempt:
                return result
            last = attempt
        errors.extend(last or [f"{key}: invalid value"])
        return None
    if origin is Literal:
        if value in args:
            return value
        allowed = ", ".join(repr(a) for a in args)
        errors.append(f"{key}: {value!r} is not one of {allowed}")
        return None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        errors.append(f"{key}: expected a boolean, got {value!r}")
        return None
    if tp is int or tp is float:
        # bool is an int subclass but never a number here; an int is a valid float.
        if isinstance(value, int | float) and not isinstance(value, bool):
            if tp is float or isinstance(value, int):
                return tp(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                return tp(value.strip())
        kind = "an integer" if tp is int else "a number"
        errors.append(f"{key}: expected {kind}, got {value!r}")
        return None
    if tp is str:
        if isinstance(value, str):
            return value
        errors.append(f"{key}: expected a string, got {value!r}")
        return None
    if origin is tuple:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            errors.append(f"{key}: expected a list")
            return None
        item_tp = args[0] if args else Any
        return tuple(_convert(item_tp, item, f"{key}[{i}]", errors) for i, item in enumerate(value))
    if origin is Mapping:
        table = _table(value, key, errors)
        if table is None:
            return None
        key_tp, val_tp = args or (str, Any)
        return MappingProxyType(
            {
                _convert(key_tp, k, f"{key}.{k}", errors): _convert(val_tp, v, f"{key}.{k}", errors)
                for k, v in table.items()
            }
        )
    errors.append(f"{key}: unsupported setting type {tp!r}")
    return None


def _table(value: object, key: str, errors: list[str]) -> Mapping[str, Any] | None:
    """A table from TOML, or from JSON text (environment variables); None after an error."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            errors.append(f"{key}: expected a JSON table, got {value!r}")
            return None
    if not isinstance(value, Mapping):
        errors.append(f"{key}: expected a table")
        return None
    return value


def _build(cls: type, data: Mapping[str, Any], prefix: str, errors: list[str]) -> Any:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            errors.append(f"{path}: unknown setting")
            continue
        before = len(errors)
        converted = _convert(hints[key], value, path, errors)
        # A nested table keeps its valid keys even when some others are wrong, so that
        # the checks after loading can still report on them.
        if len(errors) == before or (dataclasses.is_dataclass(converted) and converted):
            kwargs[key] = converted
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        errors.append(f"{prefix or 'config'}: {exc}")
        return cls()


def _transport_options(
    name: str, table: Mapping[str, Any], errors: list[str], node_id: str | None = None
) -> Any:
    """Convert a `[transports.<name>]` table into its type's options (None on errors)."""
    key = f"transports.{name}"
    kind = table.get("type")
    if kind not in transport_types():
        expected = " or ".join(repr(t) for t in sorted(transport_types()))
        errors.append(f"{key}.type: expected {expected}, got {kind!r}")
        return None
    settings = {k: v for k, v in table.items() if k != "type"}
    return _typed_options(str(kind), key, settings, errors, node_id)


def _typed_options(
    kind_name: str,
    key: str,
    settings: Mapping[str, Any],
    errors: list[str],
    node_id: str | None,
    check: bool = True,
) -> Any:
    """Build the options of a transport type from raw settings, checked (None on errors).

    A broker transport takes the gateway's `node_id` unless its table sets its own.
    """
    kind = transport_types()[kind_name]
    try:
        cls = kind.options()
    except ImportError as exc:
        errors.append(
            f"{key}: type {kind_name!r} needs its client library ({exc.name}): "
            f"{kind.install_hint()}"
        )
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = dict(settings)
    if node_id and "node_id" in fields and "node_id" not in values:
        values["node_id"] = node_id
    missing = [
        name
        for name, f in fields.items()
        if f.init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and name not in values
    ]
    for name in missing:
        errors.append(f"{key}.{name}: required")
    if missing:
        return None
    before = len(errors)
    options = _build(cls, values, key, errors)
    if len(errors) > before:
        return None
    if check:
        errors.extend(options.check(key))
    return options


def _merge(base: dict[str, Any], path: list[str], value: Any) -> None:
    node = base
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _env_path(cls: type, name: str) -> list[str] | None:
    """Map `UPSTREAM_URL` (or `UPSTREAM__URL`) onto the field path ["upstream", "url"]."""
    name = name.lower().replace("__", "_")
    hints = _hints(cls)
    for f in sorted(dataclasses.fields(cls), key=lambda f: -len(f.name)):
        if name == f.name:
            return [f.name]
        tp = hints[f.name]
        if name.startswith(f.name + "_") and dataclasses.is_dataclass(tp) and isinstance(tp, type):
            rest = _env_path(tp, name[len(f.name) + 1 :])
            if rest is not None:
                return [f.name, *rest]
    return None


def _raw_layers(
    path: str | None,
    env: Mapping[str, str] | None,
    overrides: Mapping[str, Any] | None,
    errors: list[str],
) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except OSError as exc:
            errors.append(f"{path}: cannot read: {exc.strerror}")
        except tomllib.TOMLDecodeError as exc:
            errors.append(f"{path}: invalid TOML: {exc}")
    for name, value in sorted((env if env is not None else os.environ).items()):
        if not name.startswith(ENV_PREFIX):
            continue
        field_path = _env_path(GatewayConfig, name[len(ENV_PREFIX) :])
        if field_path is None:
            # Compared with single underscores, as _env_path reads both spellings.
            known = {s.env.replace("__", "_"): s.env for s in settings_reference()}
            close = difflib.get_close_matches(name.replace("__", "_"), known, n=1, cutoff=0.8)
            hint = f" (did you mean {known[close[0]]}?)" if close else ""
            errors.append(f"{name}: unknown setting{hint}")
            continue
        _merge(raw, field_path, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            _merge(raw, key.split("."), value)
    return raw


def _check_values(cfg: GatewayConfig, errors: list[str]) -> None:
    if not 0 <= cfg.port <= 65535:
        errors.append(f"port: {cfg.port} is not a TCP port (0-65535)")
    if cfg.workers < 1:
        errors.append(f"workers: must be at least 1, got {cfg.workers}")
    if cfg.node_id and cfg.workers > 1:
        # Every worker would claim charge points as the same node (and answer each other's
        # takeover probes about connections they do not hold).
        errors.append(
            "node_id: one id for several workers; leave it unset with workers > 1 (each worker "
            "is then its own node, host name and pid)"
        )
    if cfg.call_timeout <= 0:
        errors.append(f"call_timeout: must be positive, got {cfg.call_timeout}")
    if cfg.drain_timeout < 0:
        errors.append(f"drain_timeout: must not be negative, got {cfg.drain_timeout}")
    if cfg.log_level.lower() not in _LOG_LEVELS:
        errors.append(f"log_level: {cfg.log_level!r} is not one of {', '.join(_LOG_LEVELS)}")
    if cfg.upstream.url is not None:
        up_type = cfg.upstream.type
        schemes = _UPSTREAM_SCHEMES[up_type]
        url = cfg.upstream.url
        if up_type == "websocket":
            leftover = url.replace(UPSTREAM_PLACEHOLDER, "")
            if "{" in leftover or "}" in leftover:
                errors.append(f"upstream.url: the only placeholder is {UPSTREAM_PLACEHOLDER}")
            url = url.replace(UPSTREAM_PLACEHOLDER, "CP")
        parts = urlsplit(url.split(",")[0].strip())
        if parts.scheme not in schemes or not (parts.hostname or parts.scheme == "unix"):
            expected = " or ".join(f"{scheme}://" for scheme in schemes)
            errors.append(
                f"upstream.url: type {up_type!r} expects {expected}host[:port]..., got "
                f"{parts.scheme or 'no scheme'}"
            )
        if parts.password is not None:
            errors.append("upstream.url: put credentials in upstream.username/password")
    elif cfg.upstream.type != "websocket":
        errors.append(f"upstream.url: type {cfg.upstream.type!r} needs a url")
    if cfg.upstream.options and cfg.upstream.type == "websocket":
        errors.append("upstream.options: only broker types (nats, redis_streams) take options")
    if cfg.upstream.connect_timeout <= 0:
        errors.append("upstream.connect_timeout: must be positive")
    _check_policy_table("validation.overrides", cfg.validation.overrides, errors)
    for version, table in cfg.validation.versions.items():
        if version not in ("ocpp1.6", "ocpp2.0.1", "ocpp2.1"):
            errors.append(f"validation.versions.{version}: unknown OCPP version")
        _check_policy_table(f"validation.versions.{version}", table, errors)
    for model, table in cfg.validation.models.items():
        _check_model_table(f"validation.models.{model}", table, errors)
    if cfg.validation.violation_log_entries < 1:
        errors.append("validation.violation_log_entries: must be at least 1")
    for directory in cfg.validation.schema_dirs:
        if not os.path.isdir(directory):
            errors.append(f"validation.schema_dirs: {directory!r} is not a directory")
    if "default" in cfg.transports:
        errors.append("transports.default: the name is taken by [upstream]/the local responder")
    errors.extend(cfg.local.check("local"))
    errors.extend(check_security_config(cfg.security))
    _check_admin(cfg, errors)
    errors.extend(check_capture_config(cfg.capture))


_MIN_TOKEN = 16
_MIN_TOKEN_VARIETY = 6


def token_problems(token: str) -> list[str]:
    """Why an admin token is too weak to accept.

    Args:
        token: the configured token.

    Returns:
        One line per problem (empty when the token is acceptable): shorter than 16
        characters, whitespace or control characters (a client strips or cannot send them,
        so such a token never matches), fewer than 6 different characters.
    """
    problems = []
    if len(token) < _MIN_TOKEN:
        problems.append(f"must be at least {_MIN_TOKEN} characters")
    if any(char.isspace() or not char.isprintable() for char in token):
        problems.append("must not contain whitespace or control characters")
    if len(set(token)) < _MIN_TOKEN_VARIETY:
        problems.append(
            f"must use at least {_MIN_TOKEN_VARIETY} different characters (generate one: "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return problems


def _check_admin(cfg: GatewayConfig, errors: list[str]) -> None:
    """The admin listener and proxy settings."""
    admin = cfg.admin
    if admin.port is not None:
        if not 0 <= admin.port <= 65535:
            errors.append(f"admin.port: {admin.port} is not a TCP port (0-65535)")
        elif admin.port == cfg.port != 0:
            errors.append("admin.port: must differ from port")
    if bool(admin.tls_cert) != bool(admin.tls_key):
        errors.append("admin.tls_cert: admin.tls_cert and admin.tls_key must be set together")
    for key in ("tls_cert", "tls_key"):
        path = getattr(admin, key)
        if path and not os.path.isfile(path):
            errors.append(f"admin.{key}: {path!r} is not a file")
    if admin.token is not None:
        errors.extend(f"admin.token: {problem}" for problem in token_problems(admin.token))
    for key in ("idle_timeout", "body_timeout"):
        if getattr(admin, key) <= 0:
            errors.append(f"admin.{key}: must be positive, got {getattr(admin, key)}")
    if admin.max_connections < 1:
        errors.append(f"admin.max_connections: must be at least 1, got {admin.max_connections}")
    if admin.max_connections_per_ip < 0:
        errors.append("admin.max_connections_per_ip: must not be negative")
    if admin.token_failures_per_minute < 0:
        errors.append("admin.token_failures_per_minute: must not be negative")
    if not cfg.metrics_on_main_port and admin.port is None:
        errors.append(
            "metrics_on_main_port: false needs admin.port (/metrics, /healthz and /readyz "
            "would be served nowhere)"
        )
    for block in cfg.trusted_proxies:
        try:
            ipaddress.ip_network(block, strict=False)
        except ValueError:
            errors.append(f"trusted_proxies: {block!r} is not an address or CIDR block")
    if cfg.proxy_protocol and not cfg.trusted_proxies:
        errors.append("proxy_protocol: needs trusted_proxies (the balancers that send it)")


def _check_model_table(key: str, table: Mapping[str, Any], errors: list[str]) -> None:
    """A model table: modes like a policy table, plus an optional `relax` table of tables."""
    modes = {name: value for name, value in table.items() if name != "relax"}
    _check_policy_table(key, modes, errors)
    if "relax" not in table:
        return
    relax = table["relax"]
    if not isinstance(relax, Mapping):
        errors.append(f"{key}.relax: expected a table")
        return
    for name, value in relax.items():
        if not isinstance(value, Mapping):
            errors.append(f"{key}.relax.{name}: expected a table such as {{ max_length = 50 }}")
        elif "." not in name:
            errors.append(f"{key}.relax.{name}: expected Action.member[.member...]")


def _check_policy_table(key: str, table: Mapping[str, Any], errors: list[str]) -> None:
    for name, mode in table.items():
        if not isinstance(mode, str) or mode not in _MODES:
            errors.append(f"{key}.{name}: {mode!r} is not one of {', '.join(_MODES)}")
        if ":" in name and name.split(":", 1)[1] not in _DIRECTIONS:
            errors.append(f"{key}.{name}: direction must be cp_to_csms or csms_to_cp")


def _load(
    path: str | None,
    env: Mapping[str, str] | None,
    overrides: Mapping[str, Any] | None,
) -> tuple[GatewayConfig, list[str]]:
    errors: list[str] = []
    raw = _raw_layers(path, env, overrides, errors)
    cfg: GatewayConfig = _build(GatewayConfig, raw, "", errors)
    typed = {
        name: _transport_options(name, table, errors, cfg.node_id)
        for name, table in cfg.transports.items()
    }
    cfg = dataclasses.replace(cfg, transports={k: v for k, v in typed.items() if v is not None})
    if cfg.upstream.url and cfg.upstream.type != "websocket":
        _default_backend(cfg, errors)  # the broker's options, checked as serve builds them
    _check_values(cfg, errors)
    return cfg, errors


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> GatewayConfig:
    """Load the configuration: TOML file, then OCPP_GATEWAY_* variables, then flags.

    Args:
        path: a TOML file, or None for defaults only.
        env: the environment to read; `os.environ` when None.
        overrides: values from flags, keyed by dotted path ("port", "upstream.url"); None
            values are ignored.

    Returns:
        The frozen configuration.

    Raises:
        ConfigError: listing every invalid key.
    """
    cfg, errors = _load(path, env, overrides)
    if errors:
        raise ConfigError(errors)
    return cfg


def check_config(
    path: str | None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[str]:
    """Validate a configuration as `serve` would: loaded by the same function as
    `load_config` (file, environment, flags), then the security layer (credentials and TLS
    files included), the plugins it enables and where they forward.

    Args:
        path: the TOML file, or None for defaults, environment and flags only.
        env: the environment to read too (unknown `OCPP_GATEWAY_*` names are errors); an empty
            environment when None, so that the file is judged on its own.
        overrides: values from flags, as for `load_config`.

    Returns:
        Every error found, each starting with its key; empty when the configuration is valid.
    """
    cfg, errors = _load(path, env if env is not None else {}, overrides)
    if errors:
        return errors
    errors.extend(e for e in check_security(cfg.security) if e not in errors)
    from ocpp_gateway.model_rules import check_relaxations

    errors.extend(check_relaxations(cfg.validation))
    try:
        chain = build_chain(cfg.plugins)
    except PluginError as exc:
        errors.append(f"plugins: {exc}")
    else:
        errors.extend(check_forward_targets(chain, cfg.transports))
    return errors


# ---------------------------------------------------------------------------------------------
# The settings reference (README table), from the dataclasses and their docstrings.


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting as the reference table shows it.

    Attributes:
        key: the dotted TOML key ("port", "security.max_message_bytes").
        env: its environment variable (sections joined by `__`).
        type: the value's type in words.
        default: the default, as TOML would spell it ("" for none).
        doc: the meaning, from the `Attributes:` section of the dataclass docstring.
    """

    key: str
    env: str
    type: str
    default: str
    doc: str


def _attribute_docs(cls: type) -> dict[str, str]:
    """Field name -> description, from the `Attributes:` section of a class docstring.

    An entry is `name: text` (or `a, b: text`, shared) indented under `Attributes:`, with
    continuation lines indented deeper.
    """
    doc = inspect.getdoc(cls) or ""
    lines = doc.split("Attributes:", 1)[1].splitlines() if "Attributes:" in doc else []
    docs: dict[str, str] = {}
    names: list[str] = []
    entry = re.compile(r"^    ([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*): (.*)$")
    for line in lines:
        match = entry.match(line)
        if match:
            names = match.group(1).split(", ")
            for name in names:
                docs[name] = match.group(2).strip()
        elif line.startswith("        ") and names:
            for name in names:
                docs[name] += " " + line.strip()
        elif line.strip():
            break
    return docs


def _type_words(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        arms = [_type_words(a) for a in args if a is not type(None)]
        optional = " (optional)" if type(None) in args else ""
        return " or ".join(arms) + optional
    if origin is Literal:
        return "one of " + ", ".join(f'"{a}"' for a in args)
    if origin is tuple:
        return f"list of {_type_words(args[0])}s" if args else "list"
    if origin is Mapping:
        return "table"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _default_words(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value: Any = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:  # pragma: no cover - every setting has a default
        return ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[]" if not value else json.dumps(list(value))
    if isinstance(value, Mapping):
        return "{}" if not value else json.dumps(dict(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def settings_reference(cls: type = GatewayConfig, prefix: str = "") -> list[Setting]:
    """Every setting of the configuration, in declaration order, nested tables flattened.

    Args:
        cls: the dataclass to describe (the root `GatewayConfig` by default).
        prefix: the dotted key of `cls` inside the root ("" for the root).

    Returns:
        One `Setting` per leaf field.

    Raises:
        ValueError: a field has no description in its class's `Attributes:` section.
    """
    docs = _attribute_docs(cls)
    hints = _hints(cls)
    rows: list[Setting] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue  # derived from other fields, not a setting
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            rows.extend(settings_reference(tp, key))
            continue
        if f.name not in docs:
            raise ValueError(f"{cls.__name__}.{f.name}: not described under Attributes:")
        env = ENV_PREFIX + key.upper().replace(".", "__")
        rows.append(Setting(key, env, _type_words(tp), _default_words(f), docs[f.name]))
    return rows
