"""Start-up preflight: the checks of a configuration that need the gateway's own machinery.

The configuration package judges values on their own; this module then asks the parts that
will run them, as `serve` would at start-up: the security layer (credentials, certificates and
keys readable), the model relaxations (against the compiled schemas), and the plugin chain (each
plugin found and built, each Forward naming a configured transport). `ocpp-gateway
check-config` runs both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocpp_gateway.config import GatewayConfig, load
from ocpp_gateway.errors import PluginError
from ocpp_gateway.fanout.rules import unknown_commands
from ocpp_gateway.model_rules import check_relaxations
from ocpp_gateway.routing import build_chain, check_forward_targets
from ocpp_gateway.schemas import VERSIONS, default_schemas
from ocpp_gateway.security import check_security

__all__ = ["check_config", "preflight"]


def preflight(cfg: GatewayConfig) -> list[str]:
    """The problems `serve` would meet starting with a configuration whose values are valid.

    Args:
        cfg: a loaded configuration.

    Returns:
        Every problem, each starting with its key; empty when the gateway can start with it.
    """
    errors = list(check_security(cfg.security))
    errors.extend(check_relaxations(cfg.validation))
    try:
        chain = build_chain(cfg.plugins)
    except PluginError as exc:
        errors.append(f"plugins: {exc}")
    else:
        errors.extend(check_forward_targets(chain, cfg.transports))
    errors.extend(_check_commands(cfg))
    return errors


def _check_commands(cfg: GatewayConfig) -> list[str]:
    """A controller's `commands` must name calls a CSMS makes in a version the gateway serves."""
    directions: dict[str, dict[str, str]] = {
        v: dict(default_schemas(v).actions()) for v in VERSIONS
    }
    return [
        f"backends.{name}.commands: {action!r} is no call a CSMS makes in " + ", ".join(VERSIONS)
        for name, backend in cfg.backends.items()
        for action in unknown_commands(backend.commands, directions)
    ]


def check_config(
    path: str | None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[str]:
    """Validate a configuration as `serve` would: loaded by the same function as
    `load_config` (file, environment, flags), then the preflight.

    Args:
        path: the TOML file, or None for defaults, environment and flags only.
        env: the environment to read too (unknown `OCPP_GATEWAY_*` names are errors); an empty
            environment when None, so that the file is judged on its own.
        overrides: values from flags, as for `load_config`.

    Returns:
        Every error found, each starting with its key; empty when the configuration is valid.
    """
    cfg, errors = load(path, env if env is not None else {}, overrides)
    if errors:
        return errors
    return preflight(cfg)
