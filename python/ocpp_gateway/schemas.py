"""The OCPP versions, their official schemas (found and compiled once), the transaction CALLs.

`VERSIONS` is the one list of the versions the gateway speaks, as subprotocol names, built from
the core's `OcppVersionName`; the official schemas come from the installed `ocpp` package.
"""

from __future__ import annotations

import functools
import importlib.util
import typing
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import orjson

from ocpp_gateway import _core
from ocpp_gateway._core import OcppVersionName, SchemaSet

__all__ = [
    "SCHEMA_SUBDIRS",
    "TRANSACTION_ACTIONS",
    "VERSIONS",
    "default_schemas",
    "is_transaction_message",
    "official_schema_dir",
]

#: DESIGN.md "Rules that keep data safe": the CALLs a charger queues and retries itself, never
#: to be answered with a CALLERROR on a backend's behalf (MeterValues only with a transactionId).
TRANSACTION_ACTIONS: frozenset[str] = frozenset(
    {
        "StartTransaction",
        "StopTransaction",
        "MeterValues",
        "TransactionEvent",
        "SecurityEventNotification",
    }
)


def is_transaction_message(
    action: str | None, frame: bytes, actions: frozenset[str] = TRANSACTION_ACTIONS
) -> bool:
    """Whether a valid CALL is a transaction message.

    A byte scan rules out a MeterValues without the key; only one that mentions it is parsed,
    so the check costs next to nothing on the path of every CALL.

    Args:
        action: the CALL's action.
        frame: its bytes.
        actions: the transaction-class actions (a broker transport may configure its own).

    Returns:
        True for a transaction-class CALL.
    """
    if action not in actions:
        return False
    if action != "MeterValues":
        return True
    if b'"transactionId"' not in frame:
        return False
    try:
        payload = orjson.loads(frame)[3]
    except (orjson.JSONDecodeError, IndexError, TypeError):
        return False
    return isinstance(payload, dict) and payload.get("transactionId") is not None


#: The OCPP versions, oldest first, as subprotocol names ("ocpp1.6", "ocpp2.0.1", "ocpp2.1").
VERSIONS: tuple[OcppVersionName, ...] = typing.get_args(_core.OcppVersionName)

#: Folder of each version's schemas inside the `ocpp` package ("ocpp2.0.1" -> "v201").
SCHEMA_SUBDIRS: Mapping[str, str] = MappingProxyType(
    {version: "v" + version.removeprefix("ocpp").replace(".", "") for version in VERSIONS}
)


def official_schema_dir(version: OcppVersionName) -> Path:
    """Directory of the official schemas of `version` in the installed `ocpp` package.

    Args:
        version: "ocpp1.6", "ocpp2.0.1" or "ocpp2.1".

    Returns:
        The path of `ocpp/<v16|v201|v21>/schemas`.

    Raises:
        ValueError: unknown version.
        FileNotFoundError: the `ocpp` package is not installed or has no such directory.
    """
    if version not in SCHEMA_SUBDIRS:
        known = ", ".join(SCHEMA_SUBDIRS)
        raise ValueError(f"unknown OCPP version {version!r} (known: {known})")
    spec = importlib.util.find_spec("ocpp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the `ocpp` package is not installed")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    path = package_dir / SCHEMA_SUBDIRS[version] / "schemas"
    if not path.is_dir():
        raise FileNotFoundError(f"no schemas for {version} in {package_dir}")
    return path


def default_schemas(version: OcppVersionName) -> SchemaSet:
    """The official schemas of `version`, compiled on first use and cached for the process.

    `Session(version)` calls this when it is given no `SchemaSet`.

    Args:
        version: "ocpp1.6", "ocpp2.0.1" or "ocpp2.1".

    Returns:
        The shared compiled `SchemaSet`.

    Raises:
        ValueError: unknown version.
        FileNotFoundError: the `ocpp` package lacks the schemas.
        SchemaError: a schema could not be compiled.
    """
    return _compile_official(version)


@functools.cache
def _compile_official(version: OcppVersionName) -> SchemaSet:
    return SchemaSet(version, str(official_schema_dir(version)))
