"""Valid answers to CSMS-initiated calls, derived once per action from the official schemas."""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
from collections.abc import Callable
from typing import Any

import orjson

from ocpp_gateway.schemas import SCHEMA_SUBDIRS

__all__ = ["answer_call", "minimal_response", "schema_path"]


JsonObject = dict[str, Any]


@functools.cache
def schema_dir(version: str) -> str:
    """The directory of the official schemas of `version` in the installed `ocpp` package.

    Args:
        version: "ocpp1.6", "ocpp2.0.1" or "ocpp2.1".

    Returns:
        An absolute directory path.

    Raises:
        ValueError: unknown version.
        RuntimeError: the `ocpp` package is not installed.
    """
    sub = SCHEMA_SUBDIRS.get(version)
    if sub is None:
        raise ValueError(f"unknown OCPP version {version!r}")
    spec = importlib.util.find_spec("ocpp")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the `ocpp` package (which ships the schemas) is not installed")
    return os.path.join(next(iter(spec.submodule_search_locations)), sub, "schemas")


def schema_path(version: str, action: str, response: bool) -> str:
    """The path of the request or response schema file of `action`.

    Args:
        version: "ocpp1.6", "ocpp2.0.1" or "ocpp2.1".
        action: an action name such as "BootNotification".
        response: True for the response schema.

    Returns:
        A file path (which may not exist when the action is unknown).
    """
    suffix = "Response" if response else ("" if version == "ocpp1.6" else "Request")
    return os.path.join(schema_dir(version), f"{action}{suffix}.json")


@functools.cache
def _load(version: str, action: str, response: bool) -> JsonObject | None:
    try:
        with open(schema_path(version, action, response), "rb") as f:
            schema: JsonObject = orjson.loads(f.read())
    except FileNotFoundError:
        return None
    return schema


def _minimal(node: JsonObject, root: JsonObject) -> Any:
    """The smallest instance of `node` that satisfies it: required properties only."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return _minimal(target, root)
    enum = node.get("enum")
    if enum:
        return "Accepted" if "Accepted" in enum else enum[0]
    kind = node.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        props = node.get("properties", {})
        return {name: _minimal(props.get(name, {}), root) for name in node.get("required", [])}
    if kind == "array":
        items = node.get("items", {})
        return [_minimal(items, root) for _ in range(int(node.get("minItems", 0)))]
    if kind == "integer":
        return int(node.get("minimum", 0))
    if kind == "number":
        return node.get("minimum", 0)
    if kind == "boolean":
        return False
    if kind == "string":
        fmt = node.get("format")
        if fmt == "date-time":
            return "2025-01-01T00:00:00Z"
        if fmt == "uri":
            return "http://example.invalid/"
        return "x" * int(node.get("minLength", 0))
    return None


@functools.cache
def _minimal_response_bytes(version: str, action: str) -> bytes | None:
    schema = _load(version, action, True)
    if schema is None:
        return None
    return orjson.dumps(_minimal(schema, schema))


def minimal_response(version: str, action: str) -> JsonObject | None:
    """A schema-valid response to `action` made of its required properties only.

    Enumerations answer "Accepted" where they can, else their first value.

    Args:
        version: "ocpp1.6", "ocpp2.0.1" or "ocpp2.1".
        action: the action of the call being answered.

    Returns:
        A fresh dict (the caller may change it), or None when the version has no such action.
    """
    raw = _minimal_response_bytes(version, action)
    if raw is None:
        return None
    result: JsonObject = orjson.loads(raw)
    return result


def _get_variables(request: JsonObject) -> JsonObject:
    results = []
    for item in request.get("getVariableData", []):
        results.append(
            {
                "attributeStatus": "Accepted",
                "attributeType": item.get("attributeType", "Actual"),
                "attributeValue": "0",
                "component": copy.deepcopy(item.get("component", {"name": "x"})),
                "variable": copy.deepcopy(item.get("variable", {"name": "x"})),
            }
        )
    return {"getVariableResult": results}


def _set_variables(request: JsonObject) -> JsonObject:
    results = []
    for item in request.get("setVariableData", []):
        results.append(
            {
                "attributeStatus": "Accepted",
                "attributeType": item.get("attributeType", "Actual"),
                "component": copy.deepcopy(item.get("component", {"name": "x"})),
                "variable": copy.deepcopy(item.get("variable", {"name": "x"})),
            }
        )
    return {"setVariableResult": results}


def _get_configuration(request: JsonObject) -> JsonObject:
    return {"configurationKey": [], "unknownKey": list(request.get("key", []))[:20]}


# Answers that must echo the request; everything else comes from `minimal_response`.
_SPECIAL: dict[tuple[str, str], Callable[[JsonObject], JsonObject]] = {
    ("ocpp2.0.1", "GetVariables"): _get_variables,
    ("ocpp2.1", "GetVariables"): _get_variables,
    ("ocpp2.0.1", "SetVariables"): _set_variables,
    ("ocpp2.1", "SetVariables"): _set_variables,
    ("ocpp1.6", "GetConfiguration"): _get_configuration,
}


def answer_call(version: str, action: str, request: JsonObject) -> JsonObject | None:
    """A valid response to a CSMS-initiated call, as a simulated charge point gives it.

    Args:
        version: the negotiated OCPP version.
        action: the action of the call.
        request: the call's payload.

    Returns:
        The response payload, or None when the action is unknown (answer NotImplemented).
    """
    special = _SPECIAL.get((version, action))
    if special is not None:
        return special(request)
    return minimal_response(version, action)
