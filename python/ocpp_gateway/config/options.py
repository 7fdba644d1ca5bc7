"""Transport options from configuration tables: each transport type's own frozen options class.

`[transports.<name>]` tables and the broker `[upstream]` become the options class their type
registers (`ocpp_gateway.transports.transport_types`), checked by that class's `check(key)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ocpp_gateway.config.convert import build, unknown_setting
from ocpp_gateway.transports import transport_types

__all__ = ["transport_options", "typed_options"]


def transport_options(
    name: str, table: Mapping[str, Any], errors: list[str], node_id: str | None = None
) -> Any:
    """Convert a `[transports.<name>]` table into its type's options.

    Args:
        name: the transport's name.
        table: its settings, "type" included.
        errors: where problems go, each starting with its key.
        node_id: the gateway's node id, which a broker transport takes unless it sets its own.

    Returns:
        The checked options, or None after an error.
    """
    key = f"transports.{name}"
    kind = table.get("type")
    if kind not in transport_types():
        expected = " or ".join(repr(t) for t in sorted(transport_types()))
        errors.append(f"{key}.type: expected {expected}, got {kind!r}")
        return None
    settings = {k: v for k, v in table.items() if k != "type"}
    return typed_options(str(kind), key, settings, errors, node_id)


def typed_options(
    kind_name: str,
    key: str,
    settings: Mapping[str, Any],
    errors: list[str],
    node_id: str | None,
    check: bool = True,
) -> Any:
    """Build the options of a transport type from raw settings.

    Args:
        kind_name: the registered transport type ("websocket", "nats", ...).
        key: the dotted key of the table, for errors.
        settings: the raw settings.
        errors: where problems go, each starting with its key.
        node_id: the gateway's node id; a broker transport takes it unless `settings` has one.
        check: also run the options class's own `check(key)`.

    Returns:
        The options, or None after an error (a missing client library included).
    """
    kind = transport_types()[kind_name]
    try:
        cls = kind.options()
    except ImportError as exc:
        errors.append(
            f"{key}: type {kind_name!r} needs its client library ({exc.name}): "
            f"{kind.install_hint()}"
        )
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = dict(settings)
    if node_id and "node_id" in fields and "node_id" not in values:
        values["node_id"] = node_id
    missing = [
        name
        for name, f in fields.items()
        if f.init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and name not in values
    ]
    if missing:
        errors.extend(unknown_setting(key, k, list(fields)) for k in values if k not in fields)
        errors.extend(f"{key}.{name}: required" for name in missing)
        return None
    before = len(errors)
    options = build(cls, values, key, errors)
    if len(errors) > before:
        return None
    if check:
        errors.extend(options.check(key))
    return options
