"""Loading: the TOML file, then OCPP_GATEWAY_* variables, then flags, into one GatewayConfig.

Every error is listed with its key.

Environment variables name a key path in upper case, sections joined by `_` or `__`:
`OCPP_GATEWAY_PORT=9000`, `OCPP_GATEWAY_UPSTREAM_URL=ws://csms:9000/ocpp`,
`OCPP_GATEWAY_SECURITY__MAX_MESSAGE_BYTES=65536`. Lists are comma-separated; tables are JSON.
A variable with the prefix that names no setting is an error (with the closest real name), as is
an unknown key in the file (with the closest real key of its table).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Mapping
from typing import Any

from ocpp_gateway.config.checks import check_values
from ocpp_gateway.config.convert import Text, build, hints, is_section
from ocpp_gateway.config.options import transport_options
from ocpp_gateway.config.reference import ENV_PREFIX, settings_reference
from ocpp_gateway.config.sections import GatewayConfig
from ocpp_gateway.errors import ConfigError

__all__ = ["load", "load_config"]


def load(
    path: str | None,
    env: Mapping[str, str] | None,
    overrides: Mapping[str, Any] | None,
) -> tuple[GatewayConfig, list[str]]:
    """Load a configuration and collect its errors instead of raising them.

    Args:
        path: a TOML file, or None for defaults only.
        env: the environment to read; `os.environ` when None.
        overrides: values from flags, keyed by dotted path; None values are ignored.

    Returns:
        The configuration (defaults where a value was refused) and every error, each starting
        with its key.
    """
    errors: list[str] = []
    raw = _raw_layers(path, env, overrides, errors)
    cfg: GatewayConfig = build(GatewayConfig, raw, "", errors)
    typed = {
        name: transport_options(name, table, errors, cfg.node_id)
        for name, table in cfg.transports.items()
    }
    cfg = dataclasses.replace(cfg, transports={k: v for k, v in typed.items() if v is not None})
    primary = cfg.primary()
    broker_primary = primary is not None and primary[1].type in ("nats", "redis_streams")
    if broker_primary or (cfg.upstream.url and cfg.upstream.type != "websocket"):
        try:
            cfg.transport_options()  # the broker's options, checked as serve builds them
        except ConfigError as exc:
            errors.extend(exc.errors)
    errors.extend(check_values(cfg))
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
    cfg, errors = load(path, env, overrides)
    if errors:
        raise ConfigError(errors)
    return cfg


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
    types_of = hints(cls)
    for f in sorted(dataclasses.fields(cls), key=lambda f: -len(f.name)):
        if name == f.name:
            return [f.name]
        tp = types_of[f.name]
        if name.startswith(f.name + "_") and is_section(tp):
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
    """The file's tables, with the environment's and then the flags' values merged over them
    (text from both marked `Text`, to be parsed; the file's values keep their TOML types)."""
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
        _merge(raw, field_path, Text(value))
    for key, value in (overrides or {}).items():
        if value is not None:
            _merge(raw, key.split("."), Text(value) if isinstance(value, str) else value)
    return raw
