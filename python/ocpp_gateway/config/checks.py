"""Value checks of a loaded configuration: each section's own check, and ranges for every number.

`check_values(cfg)` walks the configuration: every integer and number of a section must be finite
and not negative (ports within 0-65535), then each section's check in `SECTION_CHECKS` (keyed by
its class, given the section and its dotted key) adds the rules of its own settings, and the root's
check those that span sections. Files and plugins are not looked at here: the start-up preflight
(`ocpp_gateway.preflight`) does that with the gateway's machinery.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ocpp_gateway.config.sections import (
    AdminConfig,
    BackendConfig,
    CaptureConfig,
    GatewayConfig,
    SecurityConfig,
    UpstreamConfig,
    ValidationConfig,
)
from ocpp_gateway.schemas import VERSIONS
from ocpp_gateway.transports.websocket import PLACEHOLDER as UPSTREAM_PLACEHOLDER

__all__ = [
    "SECTION_CHECKS",
    "check_security_config",
    "check_values",
    "number_errors",
    "token_problems",
]

_MODES = ("enforce", "observe", "off")
_DIRECTIONS = ("cp_to_csms", "csms_to_cp")
_LOG_LEVELS = ("debug", "info", "warning", "error")
_UPSTREAM_SCHEMES = {
    "websocket": ("ws", "wss"),
    "nats": ("nats", "tls"),
    "redis_streams": ("redis", "rediss", "unix"),
}
_MIN_TOKEN = 16
_MIN_TOKEN_VARIETY = 6


def check_values(cfg: GatewayConfig) -> list[str]:
    """Every inconsistent or out-of-range value of a configuration.

    Args:
        cfg: the loaded configuration.

    Returns:
        The problems, each starting with its dotted key; empty when the values are consistent.
    """
    errors: list[str] = []
    for key, section in _sections(cfg, ""):
        numbers = number_errors(section, key)
        errors.extend(numbers)
        own = SECTION_CHECKS.get(type(section))
        if own is not None:
            # A number already refused for its range is not judged again by its section.
            refused = {error.split(":", 1)[0] for error in numbers}
            errors.extend(e for e in own(section, key) if e.split(":", 1)[0] not in refused)
    return errors


def _sections(section: object, key: str) -> Iterator[tuple[str, object]]:
    """The section at `key` and every section (of `sections`) nested in it, with their keys."""
    yield key, section
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        value = getattr(section, f.name)
        if type(value).__module__ == GatewayConfig.__module__:
            yield from _sections(value, f"{key}.{f.name}" if key else f.name)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def number_errors(section: object, key: str) -> list[str]:
    """The range rules every number of a section follows: finite, not negative, and a port
    (a field named `port` or ending in `_port`) within 0-65535.

    Args:
        section: a settings dataclass.
        key: its dotted key ("" for the root).

    Returns:
        The problems, each starting with the field's dotted key.
    """
    errors: list[str] = []
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        value = getattr(section, f.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name = _join(key, f.name)
        if not math.isfinite(value):
            errors.append(f"{name}: must be a finite number, got {value}")
        elif f.name == "port" or f.name.endswith("_port"):
            if not 0 <= value <= 65535:
                errors.append(f"{name}: {value} is not a TCP port (0-65535)")
        elif value < 0:
            errors.append(f"{name}: must not be negative, got {value}")
    return errors


def _check_gateway(cfg: GatewayConfig, key: str) -> list[str]:
    """The root's own settings, and the rules that span sections."""
    errors: list[str] = []
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
    if cfg.log_level.lower() not in _LOG_LEVELS:
        errors.append(f"log_level: {cfg.log_level!r} is not one of {', '.join(_LOG_LEVELS)}")
    if "default" in cfg.transports:
        errors.append("transports.default: the name is taken by [upstream]/the local responder")
    errors.extend(cfg.local.check("local"))
    if cfg.admin.port is not None and cfg.admin.port == cfg.port != 0:
        errors.append("admin.port: must differ from port")
    if not cfg.metrics_on_main_port and cfg.admin.port is None:
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
    errors.extend(_check_backends(cfg))
    return errors


def _check_backends(cfg: GatewayConfig) -> list[str]:
    """The `[backends]` tables: exactly one primary (counting `[upstream]`), and each backend's
    settings for its role."""
    errors: list[str] = []
    if not cfg.backends:
        return errors
    primaries = [f"backends.{n}" for n, b in cfg.backends.items() if b.role == "primary"]
    if cfg.upstream.url:
        primaries.insert(0, "upstream.url")
    if not primaries:
        errors.append(
            'backends: no primary; give one backend role = "primary" (or set upstream.url)'
        )
    elif len(primaries) > 1:
        errors.append(
            f"backends: exactly one primary, got {len(primaries)}: " + ", ".join(primaries)
        )
    for name, backend in cfg.backends.items():
        key = f"backends.{name}"
        if name in cfg.transports or name == "default":
            errors.append(f"{key}: the name is taken by a transport")
        errors.extend(number_errors(backend, key))
        errors.extend(_check_backend(backend, key))
    return errors


def _check_backend(backend: BackendConfig, key: str) -> list[str]:
    errors: list[str] = []
    role = backend.role
    if backend.type != "local":
        errors.extend(_check_upstream(backend.as_upstream(), key))
        if backend.url is None and backend.type == "websocket":
            errors.append(f"{key}.url: type 'websocket' needs a url")
    if role == "observer" and backend.type == "nats":
        if backend.options:
            errors.append(f"{key}.options: an observer on NATS takes no options")
        if backend.queue_frames < 1:
            errors.append(f"{key}.queue_frames: must be at least 1")
    elif role != "primary":
        if backend.type != "websocket":
            # A broker link claims the charge point's identity on the broker, and the local
            # responder answers for nobody: a second backend is a CSMS over WebSocket.
            why = (
                " (its transaction id map would have to live in the broker's key-value "
                "store, which the gateway does not keep yet)"
                if role == "candidate"
                else ""
            )
            errors.append(
                f"{key}.type: a second backend ({role}) is reached over WebSocket "
                f'(type = "websocket", or "nats" for an observer); {backend.type!r} serves only '
                f"as the primary{why}"
            )
        if backend.queue_frames < 1:
            errors.append(f"{key}.queue_frames: must be at least 1")
    elif backend.charge_points:
        errors.append(f"{key}.charge_points: the primary serves every charge point")
    if backend.commands and role != "controller":
        errors.append(f"{key}.commands: only a controller sends commands (role is {role!r})")
    if role == "controller" and not backend.commands:
        errors.append(
            f'{key}.commands: a controller needs the actions it may send (or role = "observer")'
        )
    if any(not pattern for pattern in backend.charge_points):
        errors.append(f"{key}.charge_points: an empty id or pattern")
    if role == "candidate" and not backend.id_map:
        errors.append(
            f"{key}.id_map: a candidate needs a durable store for its transaction id map and "
            "report (a SQLite file path)"
        )
    if backend.id_map and role != "candidate":
        errors.append(f"{key}.id_map: only a candidate keeps an id map")
    return errors


def _check_upstream(up: UpstreamConfig, key: str) -> list[str]:
    errors: list[str] = []
    if up.url is not None:
        schemes = _UPSTREAM_SCHEMES[up.type]
        url = up.url
        if up.type == "websocket":
            leftover = url.replace(UPSTREAM_PLACEHOLDER, "")
            if "{" in leftover or "}" in leftover:
                errors.append(f"{key}.url: the only placeholder is {UPSTREAM_PLACEHOLDER}")
            url = url.replace(UPSTREAM_PLACEHOLDER, "CP")
        parts = urlsplit(url.split(",")[0].strip())
        if parts.scheme not in schemes or not (parts.hostname or parts.scheme == "unix"):
            expected = " or ".join(f"{scheme}://" for scheme in schemes)
            errors.append(
                f"{key}.url: type {up.type!r} expects {expected}host[:port]..., got "
                f"{parts.scheme or 'no scheme'}"
            )
        if parts.password is not None:
            errors.append(f"{key}.url: put credentials in {key}.username/password")
    elif up.type != "websocket":
        errors.append(f"{key}.url: type {up.type!r} needs a url")
    if up.options and up.type == "websocket":
        errors.append(f"{key}.options: only broker types (nats, redis_streams) take options")
    if up.connect_timeout <= 0:
        errors.append(f"{key}.connect_timeout: must be positive")
    return errors


def _check_validation(validation: ValidationConfig, key: str) -> list[str]:
    errors: list[str] = []
    _check_policy_table(f"{key}.overrides", validation.overrides, errors)
    for version, table in validation.versions.items():
        if version not in VERSIONS:
            errors.append(f"{key}.versions.{version}: unknown OCPP version")
        _check_policy_table(f"{key}.versions.{version}", table, errors)
    for model, table in validation.models.items():
        _check_model_table(f"{key}.models.{model}", table, errors)
    if validation.violation_log_entries < 1:
        errors.append(f"{key}.violation_log_entries: must be at least 1")
    for directory in validation.schema_dirs:
        if not os.path.isdir(directory):
            errors.append(f"{key}.schema_dirs: {directory!r} is not a directory")
    return errors


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


def _check_admin(admin: AdminConfig, key: str) -> list[str]:
    errors: list[str] = []
    if bool(admin.tls_cert) != bool(admin.tls_key):
        errors.append(f"{key}.tls_cert: {key}.tls_cert and {key}.tls_key must be set together")
    for name in ("tls_cert", "tls_key"):
        path = getattr(admin, name)
        if path and not os.path.isfile(path):
            errors.append(f"{key}.{name}: {path!r} is not a file")
    if admin.token is not None:
        errors.extend(f"{key}.token: {problem}" for problem in token_problems(admin.token))
    for name in ("idle_timeout", "body_timeout"):
        if getattr(admin, name) <= 0:
            errors.append(f"{key}.{name}: must be positive, got {getattr(admin, name)}")
    if admin.max_connections < 1:
        errors.append(f"{key}.max_connections: must be at least 1, got {admin.max_connections}")
    return errors


def _check_capture(cfg: CaptureConfig, key: str) -> list[str]:
    errors: list[str] = []
    for name in ("default_frames", "ring_frames", "ring_bytes", "max_streams", "queue_frames"):
        if getattr(cfg, name) < 1:
            errors.append(f"{key}.{name}: must be at least 1")
    if cfg.files_keep < 1:
        errors.append(f"{key}.files_keep: must be at least 1")
    for name in ("default_seconds", "file_max_seconds"):
        if getattr(cfg, name) <= 0:
            errors.append(f"{key}.{name}: must be positive")
    if cfg.file_max_bytes < 4096:
        errors.append(f"{key}.file_max_bytes: must be at least 4096")
    if any(not pattern for pattern in cfg.charge_points):
        errors.append(f"{key}.charge_points: an empty id or pattern")
    return errors


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


def check_security_config(cfg: SecurityConfig, key: str = "security") -> list[str]:
    """Find the inconsistent settings of a `[security]` table (without reading any file).

    Args:
        cfg: the settings.
        key: the table's dotted key.

    Returns:
        Every problem, each starting with its key; empty when consistent.
    """
    errors: list[str] = []
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        errors.append(f"{key}.tls_cert: tls_cert and tls_key must be set together")
    if cfg.tls_ticket_key_file and not cfg.tls_cert:
        errors.append(f"{key}.tls_ticket_key_file: needs {key}.tls_cert and {key}.tls_key")
    if cfg.client_ca and not cfg.tls_cert:
        errors.append(f"{key}.client_ca: needs {key}.tls_cert and {key}.tls_key")
    for cp_id, profile in cfg.pinned_profiles.items():
        entry = f"{key}.pinned_profiles.{cp_id}"
        if profile not in (1, 2, 3):
            errors.append(f"{entry}: profile must be 1, 2 or 3")
        elif profile == 3 and not cfg.client_ca:
            errors.append(f"{entry}: profile 3 needs client_ca")
        elif profile in (1, 2) and not cfg.credentials_file:
            errors.append(f"{entry}: profile {profile} needs credentials_file")
        elif profile == 1 and cfg.tls_cert:
            errors.append(f"{entry}: profile 1 is plain ws, not wss")
        elif profile == 2 and not cfg.tls_cert:
            errors.append(f"{entry}: profile 2 needs tls_cert")
    if cfg.max_message_bytes <= 0:
        errors.append(f"{key}.max_message_bytes: must be positive")
    if cfg.auth_workers < 1:
        errors.append(f"{key}.auth_workers: must be at least 1, got {cfg.auth_workers}")
    if cfg.rate_excess not in ("close", "callerror"):
        errors.append(f'{key}.rate_excess: must be "close" or "callerror"')
    if cfg.takeover not in ("ping", "replace", "refuse"):
        errors.append(f'{key}.takeover: must be "ping", "replace" or "refuse"')
    return errors


#: Each section's own check, by its class: given the section and its dotted key, the problems.
SECTION_CHECKS: Mapping[type, Callable[[Any, str], list[str]]] = MappingProxyType(
    {
        GatewayConfig: _check_gateway,
        UpstreamConfig: _check_upstream,
        ValidationConfig: _check_validation,
        AdminConfig: _check_admin,
        CaptureConfig: _check_capture,
        SecurityConfig: check_security_config,
    }
)
