"""The transport registry: one module per backend, registered here by type name.

Each transport module owns a frozen, typed options class (its settings) and a transport class
built from it. The configuration loader turns a `[transports.<name>]` table into the options
class of its `type` (so a setting of the wrong type is an error with its key, in `serve` and
`check-config` alike); `build_transports` turns options into running transports. This package
does not know the configuration: the loader depends on it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ocpp_gateway.transports.base import Link, Transport, TransportUnavailable
from ocpp_gateway.transports.local import LocalOptions, LocalTransport
from ocpp_gateway.transports.websocket import WebSocketOptions, WebSocketTransport

__all__ = [
    "DEFAULT_TRANSPORT",
    "Link",
    "LocalOptions",
    "Transport",
    "TransportType",
    "TransportUnavailable",
    "WebSocketOptions",
    "build_transports",
    "transport_types",
]

DEFAULT_TRANSPORT = "default"


@dataclass(frozen=True, slots=True)
class TransportType:
    """One kind of backend.

    Attributes:
        options: its frozen options dataclass; instances have a `check(key) -> list[str]`
            method for the checks a type cannot express.
        build: `build(name, options, max_message_bytes)` -> the transport.
    """

    options: type
    build: Callable[[str, Any, int], Transport]


def _websocket(name: str, options: WebSocketOptions, max_message_bytes: int) -> Transport:
    return WebSocketTransport.from_options(name, options, max_message_bytes)


def _local(name: str, options: LocalOptions, max_message_bytes: int) -> Transport:
    return LocalTransport.from_options(name, options)


_TYPES = MappingProxyType(
    {
        "websocket": TransportType(WebSocketOptions, _websocket),
        "local": TransportType(LocalOptions, _local),
    }
)


def transport_types() -> Mapping[str, TransportType]:
    """The registry of transport types by name ("websocket", "local").

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
    by_class = {kind.options: kind for kind in _TYPES.values()}
    transports: dict[str, Transport] = {}
    for name, settings in options.items():
        kind = by_class.get(type(settings))
        if kind is None:
            raise TypeError(f"transport {name!r}: no transport type takes {type(settings)!r}")
        transports[name] = kind.build(name, settings, max_message_bytes)
    return transports
