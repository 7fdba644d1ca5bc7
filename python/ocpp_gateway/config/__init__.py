"""Gateway configuration: frozen sections loaded from TOML, then OCPP_GATEWAY_* env, then flags.

A leaf of the package: it imports none of the gateway's machinery (routing, security,
model rules, the server). The package's modules, in import order:

- `convert`: the type-hint converter from raw values into frozen dataclasses;
- `options`: `[transports.<name>]` and broker `[upstream]` tables as their transport's options;
- `sections`: one frozen dataclass per table, `GatewayConfig` the root;
- `reference`: every setting with its key, variable and meaning (the README's table);
- `checks`: each section's own check and the range rules of every number;
- `loader`: the layers (file, environment, flags) and `load_config`.

The checks that need the gateway's machinery (plugins, security files, relaxations) run in the
start-up preflight, `ocpp_gateway.preflight.check_config`.
"""

from __future__ import annotations

from ocpp_gateway.config.checks import check_security_config, check_values, token_problems
from ocpp_gateway.config.convert import build_section, frozen
from ocpp_gateway.config.loader import load, load_config
from ocpp_gateway.config.reference import ENV_PREFIX, Setting, settings_reference
from ocpp_gateway.config.sections import (
    AdminConfig,
    BackendConfig,
    CaptureConfig,
    GatewayConfig,
    LocalConfig,
    PluginsConfig,
    SecurityConfig,
    UpstreamConfig,
    ValidationConfig,
)

__all__ = [
    "ENV_PREFIX",
    "AdminConfig",
    "BackendConfig",
    "CaptureConfig",
    "GatewayConfig",
    "LocalConfig",
    "PluginsConfig",
    "SecurityConfig",
    "Setting",
    "UpstreamConfig",
    "ValidationConfig",
    "build_section",
    "check_security_config",
    "check_values",
    "frozen",
    "load",
    "load_config",
    "settings_reference",
    "token_problems",
]
