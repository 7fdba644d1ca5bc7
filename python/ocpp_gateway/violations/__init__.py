"""The rollout log of payload violations: recording (`log`), storage (`store`), report (`report`).

The gateway records and stores; only `ocpp-gateway violations` loads the report, so the names
of `report` (`main`, `table`, `model_tables`) are imported from here on first use.
"""

from __future__ import annotations

from typing import Any

from ocpp_gateway.violations.log import (
    FORMAT,
    REDACTED_KEYS,
    UNKNOWN_MODEL,
    ViolationEntry,
    ViolationLog,
    redact,
)
from ocpp_gateway.violations.store import dump, dump_if_changed, load

__all__ = [
    "FORMAT",
    "REDACTED_KEYS",
    "UNKNOWN_MODEL",
    "ViolationEntry",
    "ViolationLog",
    "dump",
    "dump_if_changed",
    "load",
    "main",
    "model_tables",
    "redact",
    "table",
]

_REPORT = frozenset({"main", "model_tables", "table"})


def __getattr__(name: str) -> Any:
    """The report's names, loaded when first asked for (`ocpp-gateway violations`)."""
    if name in _REPORT:
        from ocpp_gateway.violations import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
