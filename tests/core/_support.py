"""Helpers shared by the core tests: fixtures on disk, the python-jsonschema oracle, mutations."""

from __future__ import annotations

import copy
import decimal
import importlib.util
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
VERSIONS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
RUST_TABLES = {
    "ocpp1.6": REPO / "rust/ocpp-core/src/version/v16.rs",
    "ocpp2.0.1": REPO / "rust/ocpp-core/src/version/v201.rs",
    "ocpp2.1": REPO / "rust/ocpp-core/src/version/v21.rs",
}

# Error kinds of the DESIGN.md table, per python-jsonschema keyword.
KIND_OF_KEYWORD = {
    "required": "occurrence",
    "minItems": "occurrence",
    "maxItems": "occurrence",
    "type": "type",
    "maxLength": "type",
    "enum": "property",
    "minimum": "property",
    "maximum": "property",
    "multipleOf": "property",
    "additionalProperties": "format",
}
SPELLING = {
    "occurrence": {"ocpp1.6": "OccurenceConstraintViolation"},
    "format": {"ocpp1.6": "FormationViolation"},
}
DEFAULT_SPELLING = {
    "occurrence": "OccurrenceConstraintViolation",
    "type": "TypeConstraintViolation",
    "property": "PropertyConstraintViolation",
    "format": "FormatViolation",
}
# A decimal context wide enough for any number a test may generate (see NOTES.md).
DECIMALS = decimal.Context(prec=2000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def wire_code(version: str, kind: str) -> str:
    """The wire spelling of a payload error kind in `version` (DESIGN.md error table)."""
    return SPELLING.get(kind, {}).get(version, DEFAULT_SPELLING[kind])


@cache
def generator() -> ModuleType:
    """tests/fixtures/generate_payloads.py as a module, for its schema helpers."""
    spec = importlib.util.spec_from_file_location(
        "generate_payloads", FIXTURES / "generate_payloads.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema_dir(version: str) -> str:
    """The official schema directory of `version` in the installed `ocpp` package."""
    return str(generator().schema_dir(version))


@cache
def payloads(version: str) -> dict[str, dict[str, Any]]:
    """The committed valid payloads of `version`: {action: {"request": ..., "response": ...}}."""
    text = (FIXTURES / "payloads" / f"{version}.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


@cache
def schema(version: str, action: str, response: bool) -> dict[str, Any]:
    """The official schema of an action's request or response (decimal numbers in 1.6)."""
    request_path, response_path = generator().schema_files(version)[action]
    path = response_path if response else request_path
    assert path is not None, (version, action)
    return dict(generator().load_schema(path, version))


def oracle_errors(version: str, action: str, response: bool, text: str | bytes) -> set[str]:
    """The error kinds python-jsonschema finds in a JSON payload text (empty when valid)."""
    with decimal.localcontext(DECIMALS):
        instance = generator().parse_instance(text, version)
        validator = generator().validator(schema(version, action, response), version)
        return {KIND_OF_KEYWORD[str(e.validator)] for e in validator.iter_errors(instance)}


def dumps(value: Any) -> str:
    """Compact JSON text with non-ASCII characters kept (Decimal written exactly)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_decimal_text)


def _decimal_text(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(type(value))


def call_frame(unique_id: str, action: str, payload_text: str) -> bytes:
    """A CALL frame around a payload given as JSON text (kept byte for byte)."""
    return f'[2,"{unique_id}","{action}",{payload_text}]'.encode()


def result_frame(unique_id: str, payload_text: str) -> bytes:
    """A CALLRESULT frame around a payload given as JSON text."""
    return f'[3,"{unique_id}",{payload_text}]'.encode()


def parse_frame(frame: bytes | None) -> list[Any] | None:
    """A frame built by the core, parsed (None stays None)."""
    return None if frame is None else list(json.loads(frame))


# --- mutations -----------------------------------------------------------------------------


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["definitions"][node["$ref"].split("/")[-1]]
    return node


def walk(
    root: dict[str, Any], node: dict[str, Any], value: Any, path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], dict[str, Any], Any]]:
    """Every (path, resolved schema node, value) of an instance, depth first, the root first."""
    node = _resolve(root, node)
    yield path, node, value
    if isinstance(value, dict):
        props = node.get("properties", {})
        for key in sorted(value):
            if key in props:
                yield from walk(root, props[key], value[key], (*path, key))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            yield from walk(root, node["items"], item, (*path, i))


def replaced(instance: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A deep copy of `instance` with the value at `path` replaced by `new`."""
    out = copy.deepcopy(instance)
    if not path:
        return new
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return out


def mutations(
    version: str, action: str, response: bool, instance: Any
) -> dict[str, tuple[Any, str]]:
    """One mutated copy of a valid instance per applicable mutation, with the expected error kind.

    Returns:
        {mutation name: (mutated instance, error kind)}; a mutation appears only where the schema
        makes it an error: a required property to remove, a typed non-enum value to retype, an enum
        to leave, a maxLength to exceed, an object closed by additionalProperties to extend.
    """
    root = schema(version, action, response)
    out: dict[str, tuple[Any, str]] = {}
    wrong = {"string": 12345, "integer": "12345", "number": "1.5", "boolean": "true",
             "object": "{}", "array": "[]"}  # fmt: skip
    for path, node, value in walk(root, root, instance):
        if "required_removed" not in out and isinstance(value, dict) and node.get("required"):
            kept = {k: v for k, v in value.items() if k != node["required"][0]}
            out["required_removed"] = (replaced(instance, path, kept), "occurrence")
        if (
            "wrong_type" not in out
            and path
            and "enum" not in node
            and isinstance(node.get("type"), str)
            and node.get("type") in wrong
        ):
            out["wrong_type"] = (replaced(instance, path, wrong[node["type"]]), "type")
        if "bad_enum" not in out and path and isinstance(value, str) and "enum" in node:
            out["bad_enum"] = (replaced(instance, path, "NoSuchValueOfThisEnum"), "property")
        if (
            "too_long" not in out
            and isinstance(value, str)
            and "maxLength" in node
            and "enum" not in node
        ):
            out["too_long"] = (replaced(instance, path, "x" * (int(node["maxLength"]) + 1)), "type")
        if (
            "extra_property" not in out
            and isinstance(value, dict)
            and node.get("additionalProperties") is False
        ):
            extended = {**value, "zzNotInTheSchema": 1}
            out["extra_property"] = (replaced(instance, path, extended), "format")
    return out
