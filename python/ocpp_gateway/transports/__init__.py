"""The transport registry: one module per backend, registered here by type name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ocpp_gateway.transports.base import Link, Transport, TransportUnavailable
from ocpp_gateway.transports.local import LocalTransport
from ocpp_gateway.transports.websocket import WebSocketTransport

if TYPE_CHECKING:
    from ocpp_gateway.config import GatewayConfig

__all__ = [
    "DEFAULT_TRANSPORT",
    "Link",
    "Transport",
    "TransportFactory",
    "TransportUnavailable",
    "build_transports",
    "transport_types",
]

DEFAULT_TRANSPORT = "default"


def _websocket(name: str, options: Mapping[str, Any], config: GatewayConfig) -> Transport:
    return WebSocketTransport(
        name,
        str(options["url"]),
        username=options.get("username"),
        password=options.get("password"),
        connect_timeout=float(options.get("connect_timeout", config.upstream.connect_timeout)),
        compress=bool(options.get("compress", False)),
        max_msg_size=config.security.max_message_bytes,
    )


def _local(name: str, options: Mapping[str, Any], config: GatewayConfig) -> Transport:
    local = config.local
    return LocalTransport(
        name,
        journal=options.get("journal", local.journal),
        accept_all=bool(options.get("accept_all", local.accept_all)),
        allowed_id_tags=options.get("allowed_id_tags", local.allowed_id_tags),
        heartbeat_interval=int(options.get("heartbeat_interval", local.heartbeat_interval)),
    )


TransportFactory = Callable[[str, Mapping[str, Any], "GatewayConfig"], Transport]


def transport_types() -> Mapping[str, TransportFactory]:
    """The registry of transport types: type name -> factory(name, options table, config).

    A new backend (NATS, Redis Streams) adds its module and one line here.

    Returns:
        A read-only mapping.
    """
    return MappingProxyType({"websocket": _websocket, "local": _local})


def build_transports(config: GatewayConfig) -> dict[str, Transport]:
    """Build every transport of a configuration.

    The default transport (named "default") is the `[upstream]` CSMS when `upstream.url` is set,
    else the local responder. `[transports.<name>]` tables add named ones for routing plugins.

    Args:
        config: the gateway configuration.

    Returns:
        Transports by name; always contains "default".

    Raises:
        KeyError: a transport table names an unknown type.
    """
    up = config.upstream
    factories = transport_types()
    transports: dict[str, Transport] = {}
    if up.url:
        transports[DEFAULT_TRANSPORT] = WebSocketTransport(
            DEFAULT_TRANSPORT,
            up.url,
            username=up.username,
            password=up.password,
            connect_timeout=up.connect_timeout,
            compress=up.compress,
            max_msg_size=config.security.max_message_bytes,
            client=up.client,
        )
    else:
        transports[DEFAULT_TRANSPORT] = _local(DEFAULT_TRANSPORT, {}, config)
    for name, options in config.transports.items():
        transports[name] = factories[str(options["type"])](name, options, config)
    return transports
