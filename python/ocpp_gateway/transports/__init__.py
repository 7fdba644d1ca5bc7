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
    "broker_options",
    "build_transports",
    "check_broker_options",
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


# -- broker transports (NATS JetStream, Redis Streams) ------------------------------------------
# Their client libraries are optional extras, imported only when a broker is configured.

_BROKER_TYPES = ("nats", "redis_streams")
_EXTRAS = {"nats": "nats", "redis_streams": "redis"}


def broker_options(kind: str, name: str, table: Mapping[str, Any], config: GatewayConfig) -> Any:
    """Build the typed options of a broker transport from its table.

    The gateway's `node_id` applies unless the table sets its own.

    Args:
        kind: "nats" or "redis_streams".
        name: the transport's name (for error messages).
        table: the settings (`url`, ... without `type`).
        config: the gateway configuration.

    Returns:
        A `NatsOptions` or `RedisStreamsOptions`.

    Raises:
        ConfigError: an unknown or invalid setting.
        ImportError: the broker's client library is not installed.
    """
    from ocpp_gateway.config import build_section

    values = {key: value for key, value in table.items() if key != "type"}
    if config.node_id and "node_id" not in values:
        values["node_id"] = config.node_id
    prefix = "upstream.options" if name == DEFAULT_TRANSPORT else f"transports.{name}"
    if kind == "nats":
        from ocpp_gateway.transports.nats import NatsOptions

        return build_section(NatsOptions, values, prefix)
    from ocpp_gateway.transports.redis_streams import RedisStreamsOptions

    return build_section(RedisStreamsOptions, values, prefix)


def _upstream_table(config: GatewayConfig) -> dict[str, Any]:
    up = config.upstream
    table: dict[str, Any] = {"url": up.url, "connect_timeout": up.connect_timeout}
    if up.username is not None:
        table["username"] = up.username
    if up.password is not None:
        table["password"] = up.password
    table.update(up.options)
    return table


def _nats(name: str, options: Mapping[str, Any], config: GatewayConfig) -> Transport:
    from ocpp_gateway.transports.nats import NatsTransport

    return NatsTransport(name, broker_options("nats", name, options, config))


def _redis_streams(name: str, options: Mapping[str, Any], config: GatewayConfig) -> Transport:
    from ocpp_gateway.transports.redis_streams import RedisStreamsTransport

    return RedisStreamsTransport(name, broker_options("redis_streams", name, options, config))


def check_broker_options(config: GatewayConfig) -> list[str]:
    """The errors in the broker settings of a configuration (default and named transports).

    Args:
        config: the configuration.

    Returns:
        One message per problem, each starting with its key.
    """
    from ocpp_gateway.errors import ConfigError

    tables: list[tuple[str, str, Mapping[str, Any]]] = []
    if config.upstream.type in _BROKER_TYPES and config.upstream.url:
        tables.append((config.upstream.type, DEFAULT_TRANSPORT, _upstream_table(config)))
    for name, table in config.transports.items():
        kind = str(table.get("type"))
        if kind in _BROKER_TYPES:
            tables.append((kind, name, table))
    errors: list[str] = []
    for kind, name, table in tables:
        try:
            broker_options(kind, name, table, config)
        except ConfigError as exc:
            errors.extend(exc.errors)
        except ImportError as exc:
            extra = _EXTRAS[kind]
            errors.append(
                f"{name}: {kind} needs its client library: pip install 'ocpp-gateway[{extra}]' "
                f"({exc.name})"
            )
    return errors


# ----------------------------------------------------------------------------------------------

TransportFactory = Callable[[str, Mapping[str, Any], "GatewayConfig"], Transport]


def transport_types() -> Mapping[str, TransportFactory]:
    """The registry of transport types: type name -> factory(name, options table, config).

    A new backend (NATS, Redis Streams) adds its module and one line here.

    Returns:
        A read-only mapping.
    """
    return MappingProxyType(
        {
            "websocket": _websocket,
            "local": _local,
            "nats": _nats,
            "redis_streams": _redis_streams,
        }
    )


def build_transports(config: GatewayConfig) -> dict[str, Transport]:
    """Build every transport of a configuration.

    The default transport (named "default") is the `[upstream]` backend when `upstream.url` is
    set (a CSMS over WebSocket, or a broker by `upstream.type`), else the local responder.
    `[transports.<name>]` tables add named ones for routing plugins.

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
    if up.url and up.type in _BROKER_TYPES:
        transports[DEFAULT_TRANSPORT] = factories[up.type](
            DEFAULT_TRANSPORT, _upstream_table(config), config
        )
    elif up.url:
        transports[DEFAULT_TRANSPORT] = WebSocketTransport(
            DEFAULT_TRANSPORT,
            up.url,
            username=up.username,
            password=up.password,
            connect_timeout=up.connect_timeout,
            compress=up.compress,
            max_msg_size=config.security.max_message_bytes,
        )
    else:
        transports[DEFAULT_TRANSPORT] = _local(DEFAULT_TRANSPORT, {}, config)
    for name, options in config.transports.items():
        transports[name] = factories[str(options["type"])](name, options, config)
    return transports
