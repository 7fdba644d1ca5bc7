"""The type-hint converter: raw values (TOML, JSON, environment text, flags) into dataclasses.

It walks a dataclass's fields and their type hints, so a field added to any section is read from
every source without a change here. A TOML or JSON value must already have the setting's type
(`port = "9000"` is refused); only text from an environment variable or a flag, marked `Text`,
is parsed into it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from ocpp_gateway.errors import ConfigError

__all__ = [
    "Text",
    "build",
    "build_section",
    "freeze_fields",
    "frozen",
    "hints",
    "is_section",
    "unknown_setting",
]

_T = TypeVar("_T")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class Text(str):
    """A value given as text (an environment variable or a flag), parsed into the type of its
    setting: "9000" becomes 9000 for an integer, "a, b" a list, JSON text a table."""

    __slots__ = ()


def frozen(value: object) -> Any:
    """A deeply immutable copy of a configuration value: lists become tuples and tables
    read-only mappings (`types.MappingProxyType`), recursively.

    Args:
        value: a value read from TOML, the environment or a flag, or given in code.

    Returns:
        The frozen value; scalars and dataclasses are returned as they are (`Text` as a plain
        string).
    """
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, list | tuple):
        return tuple(frozen(item) for item in value)
    if isinstance(value, Mapping):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    return value


def freeze_fields(instance: object) -> None:
    """Freeze the list and table fields of a frozen dataclass built directly in code.

    Args:
        instance: the dataclass instance, from its `__post_init__`.
    """
    for f in dataclasses.fields(instance):  # type: ignore[arg-type]
        value = getattr(instance, f.name)
        if isinstance(value, list | dict):
            object.__setattr__(instance, f.name, frozen(value))


def hints(cls: type) -> dict[str, Any]:
    """Args:
        cls: a dataclass.

    Returns:
        Field name -> its resolved type hint.
    """
    return typing.get_type_hints(cls)


def is_section(tp: object) -> bool:
    """Args:
        tp: a type hint.

    Returns:
        True when it is a dataclass (a nested table of settings).
    """
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def build_section(cls: type[_T], table: Mapping[str, Any], prefix: str) -> _T:
    """Build a frozen settings dataclass (a transport's options) from a table, with the same
    conversions as the configuration loader.

    Args:
        cls: the dataclass.
        table: raw values (TOML, JSON, or already typed).
        prefix: the key path reported in errors ("upstream.options").

    Returns:
        The instance.

    Raises:
        ConfigError: listing every unknown or invalid key.
    """
    errors: list[str] = []
    built: _T = build(cls, table, prefix, errors)
    if errors:
        raise ConfigError(errors)
    return built


def build(cls: type, data: Mapping[str, Any], prefix: str, errors: list[str]) -> Any:
    """Build the dataclass `cls` from a table; every problem is appended to `errors`.

    Args:
        cls: the dataclass.
        data: raw values by field name.
        prefix: the dotted key of the table ("" for the root).
        errors: where problems go, each starting with its key; an unknown key gets the closest
            real one as a suggestion.

    Returns:
        The instance, built from the keys that converted (defaults for the others).
    """
    types_of = hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            errors.append(unknown_setting(prefix, str(key), names))
            continue
        before = len(errors)
        converted = _convert(types_of[key], value, path, errors)
        # A nested table keeps its valid keys even when some others are wrong, so that
        # the checks after loading can still report on them.
        if len(errors) == before or (dataclasses.is_dataclass(converted) and converted):
            kwargs[key] = converted
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        errors.append(f"{prefix or 'config'}: {exc}")
        return cls()


def unknown_setting(prefix: str, key: str, names: list[str]) -> str:
    """The error for a key its table does not have, with the closest real key when one is close.

    Args:
        prefix: the dotted key of the table ("" for the root).
        key: the unknown key.
        names: the table's real keys.

    Returns:
        "prefix.key: unknown setting (did you mean prefix.name?)".
    """
    lead = f"{prefix}." if prefix else ""
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
    hint = f" (did you mean {lead}{close[0]}?)" if close else ""
    return f"{lead}{key}: unknown setting{hint}"


_UNQUOTE = " (TOML: a quoted value is a string; write it without quotes)"
_TOML_LIST = ' (TOML: a list is written ["a", "b"])'
_TOML_TABLE = " (TOML: a table is written { key = value })"


def _wrong_type(value: object, kind: str, hint: str = "") -> str:
    """The error text for a value of the wrong type, with a hint for a file's value when the
    fix is in how TOML spells it."""
    if not isinstance(value, str) or isinstance(value, Text):
        hint = ""
    return f"expected {kind}, got {str(value) if isinstance(value, Text) else value!r}{hint}"


def _convert(tp: Any, value: Any, key: str, errors: list[str]) -> Any:
    """Convert `value` to the type `tp`; on failure append an error and return None.

    One branch per kind of type hint, in the order they are tried.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is object:
        return frozen(value)
    if is_section(tp):
        table = _table(value, key, errors)
        return None if table is None else build(tp, table, key, errors)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(args, value, key, errors)
    if origin is Literal:
        return _convert_literal(args, value, key, errors)
    if tp is bool:
        return _convert_bool(value, key, errors)
    if tp is int or tp is float:
        return _convert_number(tp, value, key, errors)
    if tp is str:
        if isinstance(value, str):
            return str(value)
        errors.append(f"{key}: expected a string, got {value!r}")
        return None
    if origin is tuple:
        return _convert_list(args[0] if args else Any, value, key, errors)
    if origin is Mapping:
        return _convert_table(args or (str, Any), value, key, errors)
    errors.append(f"{key}: unsupported setting type {tp!r}")
    return None


def _convert_literal(args: tuple[Any, ...], value: Any, key: str, errors: list[str]) -> Any:
    """One of a Literal's values (the Literal's own object, not a `Text` equal to it)."""
    if value in args and not isinstance(value, bool):
        return args[args.index(value)]
    allowed = ", ".join(repr(a) for a in args)
    shown = str(value) if isinstance(value, Text) else value
    errors.append(f"{key}: {shown!r} is not one of {allowed}")
    return None


def _convert_bool(value: Any, key: str, errors: list[str]) -> bool | None:
    """A boolean: as it is from TOML or JSON, one of the usual words from `Text`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Text) and value.lower() in _TRUE:
        return True
    if isinstance(value, Text) and value.lower() in _FALSE:
        return False
    words = isinstance(value, str) and value.lower() in ("true", "false")
    errors.append(f"{key}: {_wrong_type(value, 'a boolean', _UNQUOTE if words else '')}")
    return None


def _convert_list(item_tp: Any, value: Any, key: str, errors: list[str]) -> Any:
    """A tuple of `item_tp`: from a TOML or JSON array, or comma-separated `Text`."""
    if isinstance(value, Text):
        value = [Text(part.strip()) for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        errors.append(f"{key}: {_wrong_type(value, 'a list', _TOML_LIST)}")
        return None
    return tuple(_convert(item_tp, item, f"{key}[{i}]", errors) for i, item in enumerate(value))


def _convert_table(args: tuple[Any, ...], value: Any, key: str, errors: list[str]) -> Any:
    """A read-only mapping with keys and values of `args`' types."""
    table = _table(value, key, errors)
    if table is None:
        return None
    key_tp, val_tp = args
    return MappingProxyType(
        {
            _convert(key_tp, k, f"{key}.{k}", errors): _convert(val_tp, v, f"{key}.{k}", errors)
            for k, v in table.items()
        }
    )


def _convert_union(args: tuple[Any, ...], value: Any, key: str, errors: list[str]) -> Any:
    """An optional or alternative type: None (or "") for an optional one, else the first arm
    that converts; the errors of the last arm tried otherwise."""
    if type(None) in args and (value is None or value == ""):
        return None
    last: list[str] = []
    for arm in (a for a in args if a is not type(None)):
        attempt: list[str] = []
        result = _convert(arm, value, key, attempt)
        if not attempt:
            return result
        last = attempt
    errors.extend(last or [f"{key}: invalid value"])
    return None


def _convert_number(tp: type, value: Any, key: str, errors: list[str]) -> Any:
    """An integer or a number: as it is from TOML or JSON, parsed from `Text`."""
    # bool is an int subclass but never a number here; an int is a valid float.
    if isinstance(value, int | float) and not isinstance(value, bool):
        if tp is float or isinstance(value, int):
            return tp(value)
    elif isinstance(value, Text):
        with contextlib.suppress(ValueError):
            return tp(value.strip())
    hint = ""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            tp(value.strip())
            hint = _UNQUOTE
    errors.append(f"{key}: {_wrong_type(value, 'an integer' if tp is int else 'a number', hint)}")
    return None


def _table(value: object, key: str, errors: list[str]) -> Mapping[str, Any] | None:
    """A table from TOML, or from JSON text (environment variables); None after an error."""
    if isinstance(value, Text):
        try:
            value = json.loads(value)
        except ValueError:
            errors.append(f"{key}: expected a JSON table, got {str(value)!r}")
            return None
    if not isinstance(value, Mapping):
        errors.append(f"{key}: {_wrong_type(value, 'a table', _TOML_TABLE)}")
        return None
    return value
