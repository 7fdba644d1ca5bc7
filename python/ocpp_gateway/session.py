"""Where the Rust binding finds the official schemas: the names `ocpp_gateway.schemas` holds.

`Session(version)` without a `SchemaSet` imports `ocpp_gateway.session.default_schemas` (the
binding names this module); the module was renamed `schemas`, and this one stays for the binding
and for callers not yet moved.
"""

from __future__ import annotations

from ocpp_gateway.schemas import (
    SCHEMA_SUBDIRS,
    TRANSACTION_ACTIONS,
    VERSIONS,
    default_schemas,
    is_transaction_message,
    official_schema_dir,
)

__all__ = [
    "SCHEMA_SUBDIRS",
    "TRANSACTION_ACTIONS",
    "VERSIONS",
    "default_schemas",
    "is_transaction_message",
    "official_schema_dir",
]
