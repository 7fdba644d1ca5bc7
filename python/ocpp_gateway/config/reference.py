"""The settings reference: every setting with its key, variable, type, default and meaning.

Read from the sections' dataclasses and the `Attributes:` lines of their docstrings, it is the
README's settings table (`ocpp_gateway.settings_table`, checked by `scripts/lint`) and the list of
names a misspelled environment variable is compared with.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ocpp_gateway.config.convert import hints, is_section
from ocpp_gateway.config.sections import GatewayConfig

__all__ = ["ENV_PREFIX", "Setting", "settings_reference"]

ENV_PREFIX = "OCPP_GATEWAY_"


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting as the reference table shows it.

    Attributes:
        key: the dotted TOML key ("port", "security.max_message_bytes").
        env: its environment variable (sections joined by `__`).
        type: the value's type in words.
        default: the default, as TOML would spell it ("" for none).
        doc: the meaning, from the `Attributes:` section of the dataclass docstring.
    """

    key: str
    env: str
    type: str
    default: str
    doc: str


def _attribute_docs(cls: type) -> dict[str, str]:
    """Field name -> description, from the `Attributes:` section of a class docstring.

    An entry is `name: text` (or `a, b: text`, shared) indented under `Attributes:`, with
    continuation lines indented deeper.
    """
    doc = inspect.getdoc(cls) or ""
    lines = doc.split("Attributes:", 1)[1].splitlines() if "Attributes:" in doc else []
    docs: dict[str, str] = {}
    names: list[str] = []
    entry = re.compile(r"^    ([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*): (.*)$")
    for line in lines:
        match = entry.match(line)
        if match:
            names = match.group(1).split(", ")
            for name in names:
                docs[name] = match.group(2).strip()
        elif line.startswith("        ") and names:
            for name in names:
                docs[name] += " " + line.strip()
        elif line.strip():
            break
    return docs


def _type_words(tp: Any) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        arms = [_type_words(a) for a in args if a is not type(None)]
        optional = " (optional)" if type(None) in args else ""
        return " or ".join(arms) + optional
    if origin is Literal:
        return "one of " + ", ".join(f'"{a}"' for a in args)
    if origin is tuple:
        return f"list of {_type_words(args[0])}s" if args else "list"
    if origin is Mapping:
        return "table"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _default_words(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value: Any = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:  # pragma: no cover - every setting has a default
        return ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[]" if not value else json.dumps(list(value))
    if isinstance(value, Mapping):
        return "{}" if not value else json.dumps(dict(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def settings_reference(cls: type = GatewayConfig, prefix: str = "") -> list[Setting]:
    """Every setting of the configuration, in declaration order, nested tables flattened.

    Args:
        cls: the dataclass to describe (the root `GatewayConfig` by default).
        prefix: the dotted key of `cls` inside the root ("" for the root).

    Returns:
        One `Setting` per leaf field.

    Raises:
        ValueError: a field has no description in its class's `Attributes:` section.
    """
    docs = _attribute_docs(cls)
    types_of = hints(cls)
    rows: list[Setting] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue  # derived from other fields, not a setting
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = types_of[f.name]
        if is_section(tp):
            rows.extend(settings_reference(tp, key))
            continue
        if f.name not in docs:
            raise ValueError(f"{cls.__name__}.{f.name}: not described under Attributes:")
        env = ENV_PREFIX + key.upper().replace(".", "__")
        rows.append(Setting(key, env, _type_words(tp), _default_words(f), docs[f.name]))
    return rows
