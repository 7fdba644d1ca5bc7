"""Example routing plugin: which second backends serve a charge point, by its network.

A site's energy manager should command only the chargers of its own site. When the sites'
charge point ids follow no pattern but each site has its own network, the `charge_points`
patterns of a `[backends.<name>]` table cannot say it; this plugin's `second_backends` hook can.
It is asked once per relayed charge point, with the second backends the configuration lets
serve it, and keeps those it allows:

    [backends.ems-site7]
    role = "controller"
    url = "ws://ems.site7.internal/ocpp"
    commands = ["SetChargingProfile", "ClearChargingProfile"]

    [plugins]
    enabled = ["backends_by_network:BackendsByNetwork"]
    [plugins.options."backends_by_network:BackendsByNetwork"]
    networks = { "ems-site7" = ["10.7.0.0/16"] }

A backend named in `networks` serves only charge points whose address is in one of its
networks; a backend not named is left as the configuration has it. A charge point whose address
is unknown gets none of the named ones. (Behind a load balancer, the address is the one the
PROXY protocol header gives.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping, Sequence

from ocpp_gateway.routing import CONTINUE, ConnectionInfo, Decision, MessageView


class BackendsByNetwork:
    """Limit second backends to charge points connecting from their networks.

    Args:
        networks: backend name -> the networks (CIDR notation) its charge points connect from.

    Raises:
        ValueError: a network that is not one.
    """

    def __init__(self, networks: Mapping[str, Sequence[str]]) -> None:
        self.networks = {
            name: tuple(ipaddress.ip_network(n, strict=False) for n in nets)
            for name, nets in networks.items()
        }

    def second_backends(self, info: ConnectionInfo, names: Collection[str]) -> list[str]:
        """Args:
            info: the charge point.
            names: the second backends the configuration lets serve it.

        Returns:
            Those of `names` not named in `networks`, and those whose networks hold the
            charge point's address.
        """
        try:
            address = ipaddress.ip_address(info.remote or "")
        except ValueError:
            address = None
        kept: list[str] = []
        for name in names:
            nets = self.networks.get(name)
            if nets is None or (address is not None and any(address in n for n in nets)):
                kept.append(name)
        return kept

    def on_connect(self, info: ConnectionInfo) -> Decision:
        """Returns: CONTINUE (every charge point is welcome)."""
        return CONTINUE

    def on_call(self, message: MessageView) -> Decision:
        """Returns: CONTINUE."""
        return CONTINUE

    def on_call_result(self, message: MessageView) -> Decision:
        """Returns: CONTINUE."""
        return CONTINUE

    def on_disconnect(self, info: ConnectionInfo) -> None:
        """Nothing to forget."""
