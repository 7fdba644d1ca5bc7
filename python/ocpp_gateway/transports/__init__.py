"""The transport registry: one module per backend, registered here by type name.

Each transport module owns a frozen, typed options class (its settings) and a transport class
built from it. The configuration loader turns a `[transports.<name>]` table (or `[upstream]`)
into the options class of its `type`, so a setting of the wrong type is an error with its key,
in `serve` and `check-config` alike; `build_transports` turns options into running transports.
This package does not know the configuration: the loader depends on it, never the reverse.

The broker transports' client libraries (`nats-py`, `redis`) are optional extras: their
modules are imported only when a configuration names them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ocpp_gateway.transports.base import (
    Link,
    SharedOwnership,
    Transport,
    TransportUnavailable,
    WakingLink,
)
from ocpp_gateway.transports.local import LocalOptions
from ocpp_gateway.transports.websocket import WebSocketOptions

__all__ = [
    "DEFAULT_TRANSPORT",
    "Link",
    "LocalOptions",
    "SharedOwnership",
    "Transport",
    "TransportType",
    "TransportUnavailable",
    "WakingLink",
    "WebSocketOptions",
    "build_transports",
    "transport_types",
]

DEFAULT_TRANSPORT = "default"


@dataclass(frozen=True, slots=True)
class TransportType:
    """One kind of backend, found in its module when first used.

    Attributes:
        module: the module of the transport ("ocpp_gateway.transports.nats").
        options_class: the name of its frozen options dataclass in that module.
        transport_class: the name of its transport class, which has a
            `from_options(name, options, max_message_bytes)` class method.
        extra: the package extra that installs its client library, if it needs one.
    """

    module: str
    options_class: str
    transport_class: str
    extra: str | None = None

    def options(self) -> type:
        """The options dataclass.

        Raises:
            ImportError: the transport's client library is not installed (see `extra`).
        """
        cls: type = getattr(importlib.import_module(self.module), self.options_class)
        return cls

    def install_hint(self) -> str:
        """Returns: how to install the client library this type needs, from PyPI and from a
        checkout of the repository ("" when it needs none)."""
        if self.extra is None:
            return ""
        return (
            f"pip install 'ocpp-gateway[{self.extra}]' "
            f"(from a checkout of the repository: pip install -e '.[{self.extra}]')"
        )

    def build(self, name: str, options: Any, max_message_bytes: int) -> Transport:
        """Build the transport named `name` from its options."""
        cls = getattr(importlib.import_module(self.module), self.transport_class)
        transport: Transport = cls.from_options(name, options, max_message_bytes)
        return transport


_TYPES = MappingProxyType(
    {
        "websocket": TransportType(
            "ocpp_gateway.transports.websocket", "WebSocketOptions", "WebSocketTransport"
        ),
        "local": TransportType("ocpp_gateway.transports.local", "LocalOptions", "LocalTransport"),
        "nats": TransportType(
            "ocpp_gateway.transports.nats", "NatsOptions", "NatsTransport", "nats"
        ),
        "redis_streams": TransportType(
            "ocpp_gateway.transports.redis_streams",
            "RedisStreamsOptions",
            "RedisStreamsTransport",
            "redis",
        ),
    }
)


def transport_types() -> Mapping[str, TransportType]:
    """The registry of transport types by name ("websocket", "local", "nats", "redis_streams").

    A new backend adds its module (options class + transport) and one line here.

    Returns:
        A read-only mapping.
    """
    return _TYPES


def build_transports(options: Mapping[str, Any], max_message_bytes: int) -> dict[str, Transport]:
    """Build transports from typed options.

    Args:
        options: transport name -> an instance of a registered options class; "default" is
            the default backend.
        max_message_bytes: the largest frame a backend may send.

    Returns:
        Transports by name.

    Raises:
        TypeError: an options object of no registered type.
    """
    transports: dict[str, Transport] = {}
    for name, settings in options.items():
        cls = type(settings)
        kind = next(
            (
                k
                for k in _TYPES.values()
                if k.module == cls.__module__ and k.options_class == cls.__name__
            ),
            None,
        )
        if kind is None:
            raise TypeError(f"transport {name!r}: no transport type takes {cls!r}")
        transports[name] = kind.build(name, settings, max_message_bytes)
    return transports
