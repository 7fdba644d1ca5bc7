"""Built-in plugin `route_by_action`: send chosen charge point actions to another transport."""

from __future__ import annotations

from collections.abc import Mapping

from ocpp_gateway.routing import (
    CONTINUE,
    ConnectionInfo,
    Decision,
    Forward,
    MessageView,
)

__all__ = ["RouteByAction"]


class RouteByAction:
    """Forward charge-point-initiated CALLs to a named transport by action.

    Configuration:

        [transports.billing]
        type = "websocket"
        url = "ws://billing.internal:9100/ocpp"

        [plugins]
        enabled = ["route_by_action"]
        [plugins.options.route_by_action]
        routes = { StartTransaction = "billing", StopTransaction = "billing" }

    Args:
        routes: action name -> transport name.

    Raises:
        ValueError: a route is not a string -> string pair.
    """

    def __init__(self, routes: Mapping[str, str] | None = None) -> None:
        routes = dict(routes or {})
        for action, transport in routes.items():
            if not isinstance(action, str) or not isinstance(transport, str) or not transport:
                raise ValueError(f"route {action!r} -> {transport!r} must map names to names")
        self._forwards = {action: Forward(transport) for action, transport in routes.items()}

    def forward_targets(self) -> frozenset[str]:
        """Returns: the transport names this plugin forwards to (checked at start-up)."""
        return frozenset(forward.transport for forward in self._forwards.values())

    def on_connect(self, info: ConnectionInfo) -> Decision:
        """Returns: CONTINUE."""
        return CONTINUE

    def on_call(self, message: MessageView) -> Decision:
        """Returns: Forward(transport) for a routed action from a charge point, else CONTINUE."""
        if message.direction == "cp_to_csms" and message.action is not None:
            return self._forwards.get(message.action, CONTINUE)
        return CONTINUE

    def on_call_result(self, message: MessageView) -> Decision:
        """Returns: CONTINUE."""
        return CONTINUE

    def on_disconnect(self, info: ConnectionInfo) -> None:
        """Nothing to forget."""
