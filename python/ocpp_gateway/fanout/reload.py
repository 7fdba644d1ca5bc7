"""Configuration reload (SIGHUP): which backend is primary now, and what else needs a restart.

`plan_reload` compares the configuration read again with the one the process runs with, its
backends' roles taken as they are now (after any cutover): a new primary that is a candidate
now is a cutover, applied as `POST /backends/primary` applies it (`Runtime.cut_over`: no
charge point socket is dropped); every other changed setting is only named, as needing a
restart. `apply_reload` does both for a running process.

The primary's name: its `[backends.<name>]` name, or "upstream" when `[upstream]` is the
primary. To switch back and forth by reload, name both backends in `[backends]`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ocpp_gateway.config import GatewayConfig
from ocpp_gateway.config.sections import BackendRole

if TYPE_CHECKING:
    from ocpp_gateway.runtime import Runtime

__all__ = ["ReloadPlan", "apply_reload", "live_roles", "plan_reload", "primary_name"]

log = logging.getLogger("ocpp_gateway.fanout")

_UPSTREAM = "upstream"


@dataclass(frozen=True)
class ReloadPlan:
    """What a reload does.

    Attributes:
        primary: the backend to make the primary (None: the primary is unchanged).
        refused: why the primary cannot change as the file says (then `primary` is None).
        restart: the settings that changed and take effect only after a restart, as dotted
            keys ("security.message_rate", "backends.ems.url", "backends.lab" when a backend
            came or went).
    """

    primary: str | None = None
    refused: str | None = None
    restart: tuple[str, ...] = ()


def primary_name(config: GatewayConfig) -> str:
    """Args:
        config: a configuration.

    Returns:
        The name of its primary: its `[backends]` primary, else "upstream".
    """
    found = config.primary()
    return found[0] if found is not None else _UPSTREAM


def plan_reload(
    running: GatewayConfig, roles: Mapping[str, BackendRole], new: GatewayConfig
) -> ReloadPlan:
    """Decide what a reload of `new` does to a process running `running`.

    Args:
        running: the configuration the process started with.
        roles: each backend's role now, by name (`live_roles`; "upstream" for `[upstream]`).
        new: the configuration read again.

    Returns:
        The plan.
    """
    now = next((name for name, role in roles.items() if role == "primary"), _UPSTREAM)
    wanted = primary_name(new)
    expected = dict(roles)
    primary: str | None = None
    refused: str | None = None
    if wanted != now:
        if expected.get(wanted) == "candidate":
            primary = wanted
            expected[wanted], expected[now] = "primary", "candidate"
        else:
            refused = (
                f"{wanted!r} is not a candidate backend now (the primary is {now!r}); "
                "only a candidate can become the primary without a restart"
            )
    # The file as it would read if it described the process after this reload: the roles as
    # they will be, and a candidate's id map with the one that is a candidate (a cutover hands
    # the store to the former primary, `Fanout.cutover`).
    backends = {
        name: dataclasses.replace(b, role=expected.get(name, b.role))
        for name, b in running.backends.items()
    }
    first = primary_name(running)
    current = next(name for name, role in expected.items() if role == "primary")
    if current != first and first in backends and current in backends:
        store = backends[current].id_map
        backends[current] = dataclasses.replace(backends[current], id_map=None)
        backends[first] = dataclasses.replace(backends[first], id_map=store)
    baseline = dataclasses.replace(running, backends=backends)
    return ReloadPlan(primary, refused, tuple(_changed("", baseline, new)))


def live_roles(runtime: Runtime) -> dict[str, BackendRole]:
    """Args:
        runtime: the running process.

    Returns:
        Each backend's role now, by name: the configured ones with the fanout's roles (which
        a cutover swaps), and "upstream" when `[upstream]` is (or was) the primary.
    """
    config = runtime.config
    roles: dict[str, BackendRole] = {name: b.role for name, b in config.backends.items()}
    if config.primary() is None:
        roles[_UPSTREAM] = "primary"
    fanout = runtime.fanout
    if fanout is not None:
        for backend in fanout.backends:
            roles[backend.name] = backend.role
        roles[fanout.primary_name] = "primary"
    return roles


def apply_reload(runtime: Runtime, new: GatewayConfig) -> ReloadPlan:
    """Apply a configuration read again to a running process: a primary change as a cutover;
    the rest is logged as needing a restart.

    Args:
        runtime: the running process.
        new: the configuration read again (checked by the loader).

    Returns:
        What was done (`primary`) and what was not (`refused`, `restart`).
    """
    plan = plan_reload(runtime.config, live_roles(runtime), new)
    if plan.primary is not None:
        try:
            runtime.cut_over(plan.primary)
        except ValueError as exc:
            plan = dataclasses.replace(plan, primary=None, refused=str(exc))
    if plan.primary is not None:
        log.warning("reload: primary changed", extra={"backend": plan.primary})
    if plan.refused is not None:
        log.error("reload: primary not changed", extra={"error": plan.refused})
    if plan.restart:
        log.warning("reload: settings that need a restart", extra={"settings": list(plan.restart)})
    if plan.primary is None and plan.refused is None and not plan.restart:
        log.info("reload: nothing changed")
    return plan


def _changed(prefix: str, old: Any, new: Any) -> list[str]:
    """The dotted keys whose values differ, down to a section's or a backend's field."""
    if old == new:
        return []
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        keys: list[str] = []
        for f in dataclasses.fields(old):
            keys += _changed(f"{prefix}{f.name}.", getattr(old, f.name), getattr(new, f.name))
        return keys
    if prefix.count(".") == 1 and isinstance(old, Mapping) and isinstance(new, Mapping):
        # A table of named entries ([backends], [transports]): each entry on its own.
        keys = []
        for name in sorted({*old, *new}):
            if name not in old or name not in new:
                keys.append(f"{prefix}{name}")
            else:
                keys += _changed(f"{prefix}{name}.", old[name], new[name])
        return keys
    return [prefix.rstrip(".")]
