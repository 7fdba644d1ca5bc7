"""Routing plugins: a typed Protocol, the decisions a hook returns, and the chain built at start-up.

A plugin is any object with the four hooks below; it decides, it does no I/O. The chain calls
the plugins in configured order and stops at the first decision other than `Continue`.

- `on_connect(info)` before the upgrade: `Continue` or `Reject` (the handshake is refused, 403).
- `on_call(message)` for every valid CALL, both directions: `Continue`, `Forward(transport)`
  (a charge point's CALL goes to another configured transport), `Reply(payload)` (answer the
  caller with a CALLRESULT built from `payload`) or `Reject(error_code, description)` (answer
  with a CALLERROR). Answers built here still pass through the connection's Session, so they
  are validated and clear the pending call.
- `on_call_result(message)` for every valid CALLRESULT/CALLERROR: observation only; return
  `Continue`.
- `on_disconnect(info)` when the charge point has gone.

One optional hook, asked once per relayed charge point that has second backends (`[backends]`):
`second_backends(info, names)` gets the names of the second backends whose `charge_points`
serve it and returns those it keeps (any iterable of names), or None for no opinion. Each
plugin that has the hook narrows the set, in chain order; it never adds a backend the
configuration left out. A failing hook is logged and counts as no opinion.

Plugins are found through the entry-point group `ocpp_gateway.plugins` (the built-ins are also
importable by name without installation), enabled and configured in the `[plugins]` table:

    [plugins]
    enabled = ["block_commands"]
    [plugins.options.block_commands]
    actions = ["Reset", "UpdateFirmware"]

With no plugin enabled, `build_chain` returns None and the server skips every hook.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import orjson

from ocpp_gateway._core import DirectionName, OcppVersionName
from ocpp_gateway.errors import PluginError

__all__ = [
    "CONTINUE",
    "ENTRY_POINT_GROUP",
    "Chain",
    "ConnectionInfo",
    "Continue",
    "Decision",
    "Forward",
    "MessageView",
    "Plugin",
    "PluginSettings",
    "Reject",
    "Reply",
    "build_chain",
    "check_forward_targets",
    "load_plugin_class",
]

log = logging.getLogger("ocpp_gateway.routing")
ENTRY_POINT_GROUP = "ocpp_gateway.plugins"
_BUILTINS = {
    "route_by_action": "ocpp_gateway.routing.route_by_action:RouteByAction",
    "block_commands": "ocpp_gateway.routing.block_commands:BlockCommands",
}

Direction = DirectionName
"""The way a frame travels: "cp_to_csms" or "csms_to_cp" (the metrics' direction label)."""


@dataclass(frozen=True, slots=True)
class Continue:
    """Let the next plugin decide; at the end of the chain, relay as usual."""


CONTINUE = Continue()


@dataclass(frozen=True, slots=True)
class Forward:
    """Send a charge point's CALL to the named transport instead of the default one.

    Attributes:
        transport: a name from the `[transports]` table ("default" is the upstream/local one).
    """

    transport: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the caller with a CALLRESULT carrying `payload`; nothing is forwarded.

    Attributes:
        payload: the response payload (a JSON object).
    """

    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer the caller with a CALLERROR; nothing is forwarded.

    Attributes:
        error_code: an OCPP-J error code valid in the connection's version (e.g. "SecurityError",
            "NotSupported").
        description: a short human-readable reason.
    """

    error_code: str
    description: str = ""


Decision = Continue | Forward | Reply | Reject


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """Who a connection is.

    Attributes:
        charge_point_id: the decoded identity.
        version: the negotiated OCPP version ("ocpp1.6", "ocpp2.0.1", "ocpp2.1").
        remote: the peer address, if known.
    """

    charge_point_id: str
    version: OcppVersionName
    remote: str | None


class MessageView:
    """One validated frame as a plugin sees it; the payload is parsed only when asked for.

    Args:
        connection: the connection it travels on.
        direction: "cp_to_csms" or "csms_to_cp".
        message_type: 2 (CALL), 3 (CALLRESULT), 4 (CALLERROR).
        unique_id: the frame's UniqueId.
        action: the action (for results, the action of the call they answer).
        raw: the frame's bytes, exactly as received.
    """

    __slots__ = (
        "_payload",
        "action",
        "connection",
        "direction",
        "message_type",
        "raw",
        "unique_id",
    )

    def __init__(
        self,
        connection: ConnectionInfo,
        direction: Direction,
        message_type: int,
        unique_id: str | None,
        action: str | None,
        raw: bytes,
    ) -> None:
        self.connection = connection
        self.direction = direction
        self.message_type = message_type
        self.unique_id = unique_id
        self.action = action
        self.raw = raw
        self._payload: Any = None

    @property
    def charge_point_id(self) -> str:
        """The identity of the charge point on this connection."""
        return self.connection.charge_point_id

    @property
    def payload(self) -> Any:
        """The frame's payload (CALL: element 3, CALLRESULT: element 2, CALLERROR: details),
        parsed on first access."""
        if self._payload is None:
            frame = orjson.loads(self.raw)
            index = {2: 3, 3: 2, 4: 4}.get(self.message_type, len(frame) - 1)
            self._payload = frame[index] if index < len(frame) else {}
        return self._payload


@runtime_checkable
class Plugin(Protocol):
    """What a routing plugin implements. Hooks must be fast and must not block or do I/O."""

    def on_connect(self, info: ConnectionInfo) -> Decision:
        """Args:
            info: the connecting charge point.

        Returns:
            `Continue`, or `Reject` to refuse the handshake.
        """
        ...

    def on_call(self, message: MessageView) -> Decision:
        """Args:
            message: a valid CALL in either direction.

        Returns:
            Any decision (see the module docstring).
        """
        ...

    def on_call_result(self, message: MessageView) -> Decision:
        """Args:
            message: a valid CALLRESULT or CALLERROR in either direction.

        Returns:
            `Continue`.
        """
        ...

    def on_disconnect(self, info: ConnectionInfo) -> None:
        """Args:
        info: the charge point that left.
        """
        ...


class Chain:
    """The enabled plugins in order; built once at start-up.

    Args:
        plugins: plugin instances, first asked first.
    """

    __slots__ = ("plugins",)

    def __init__(self, plugins: Sequence[Plugin]) -> None:
        self.plugins = tuple(plugins)

    def on_connect(self, info: ConnectionInfo) -> Decision:
        """Returns: the first non-Continue decision of the plugins, else CONTINUE."""
        for plugin in self.plugins:
            decision = plugin.on_connect(info)
            if not isinstance(decision, Continue):
                return decision
        return CONTINUE

    def on_call(self, message: MessageView) -> Decision:
        """Returns: the first non-Continue decision of the plugins, else CONTINUE."""
        for plugin in self.plugins:
            decision = plugin.on_call(message)
            if not isinstance(decision, Continue):
                return decision
        return CONTINUE

    def on_call_result(self, message: MessageView) -> Decision:
        """Returns: CONTINUE after every plugin has seen the result."""
        for plugin in self.plugins:
            plugin.on_call_result(message)
        return CONTINUE

    def second_backends(
        self, info: ConnectionInfo, names: Collection[str]
    ) -> frozenset[str] | None:
        """The second backends that serve a charge point, by the plugins that decide it.

        Args:
            info: the charge point, at the start of its relay.
            names: the second backends the configuration lets serve it.

        Returns:
            The names the plugins with a `second_backends` hook kept (a subset of `names`), or
            None when no plugin has the hook or all answered None.
        """
        kept: frozenset[str] | None = None
        for plugin in self.plugins:
            hook = getattr(plugin, "second_backends", None)
            if hook is None:
                continue
            try:
                answer = hook(info, names)
            except Exception:
                log.exception(
                    "plugin second_backends failed", extra={"plugin": type(plugin).__name__}
                )
                continue
            if answer is None:
                continue
            chosen = frozenset(answer) & frozenset(names)
            kept = chosen if kept is None else kept & chosen
        return kept

    def on_disconnect(self, info: ConnectionInfo) -> None:
        """Tell every plugin a charge point left; a failing plugin is logged, not raised."""
        for plugin in self.plugins:
            try:
                plugin.on_disconnect(info)
            except Exception:
                log.exception(
                    "plugin on_disconnect failed", extra={"plugin": type(plugin).__name__}
                )


def check_forward_targets(chain: Chain | None, transports: Iterable[str]) -> list[str]:
    """Find Forward targets that name no configured transport.

    A plugin declares where it may forward with an optional `forward_targets()` method
    returning transport names (the built-in `route_by_action` does); others are not checked.

    Args:
        chain: the built chain, or None.
        transports: the configured transport names ("default" is always valid).

    Returns:
        One message per unknown target, starting with "plugins:".
    """
    if chain is None:
        return []
    known = {"default", *transports}
    errors: list[str] = []
    for plugin in chain.plugins:
        declared = getattr(plugin, "forward_targets", None)
        if declared is None:
            continue
        for target in sorted(declared()):
            if target not in known:
                errors.append(
                    f"plugins: {type(plugin).__name__} forwards to transport {target!r}, "
                    f"which is not in [transports] (known: {', '.join(sorted(known))})"
                )
    return errors


def load_plugin_class(name: str) -> type[Any]:
    """Find a plugin class by entry-point name, built-in name, or "module:Class".

    Args:
        name: the name in `[plugins] enabled`.

    Returns:
        The class.

    Raises:
        PluginError: nothing of that name can be loaded.
    """
    target: str | None = None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            target = ep.value
            break
    if target is None:
        target = _BUILTINS.get(name, name if ":" in name else None)
    if target is None:
        known = sorted({*_BUILTINS, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
        raise PluginError(f"unknown plugin {name!r} (known: {', '.join(known)})")
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"cannot load plugin {name!r} from {target!r}: {exc}") from exc
    if not isinstance(obj, type):
        raise PluginError(f"plugin {name!r} ({target}) is not a class")
    return obj


class PluginSettings(Protocol):
    """What `build_chain` reads of the `[plugins]` table (`config.PluginsConfig`)."""

    @property
    def enabled(self) -> Sequence[str]: ...

    @property
    def options(self) -> Mapping[str, Mapping[str, object]]: ...


def build_chain(config: PluginSettings) -> Chain | None:
    """Build the plugin chain from the `[plugins]` table.

    Args:
        config: enabled names and their options.

    Returns:
        The chain, or None when no plugin is enabled (the server then skips every hook).

    Raises:
        PluginError: a plugin cannot be loaded, rejects its options, or lacks a hook.
    """
    if not config.enabled:
        return None
    for name in config.options:
        if name not in config.enabled:
            raise PluginError(f"options given for plugin {name!r}, which is not enabled")
    plugins: list[Plugin] = []
    for name in config.enabled:
        cls = load_plugin_class(name)
        try:
            plugin = cls(**dict(config.options.get(name, {})))
        except (TypeError, ValueError) as exc:
            raise PluginError(f"plugin {name!r} rejected its options: {exc}") from exc
        if not isinstance(plugin, Plugin):
            raise PluginError(f"plugin {name!r} lacks one of the Plugin hooks")
        plugins.append(plugin)
    return Chain(plugins)
