"""Per-model validation rules from `[validation.models]`: policies and relaxations, compiled once.

A model table holds modes like the global policy (`default = "observe"`, `"MeterValues" =
"off"`, ...) and an optional `relax` table. Each relax key names a field as
`Action.member.member` (a request payload; `ActionResponse.member` for a response), member
names from the payload root, arrays stepped through; its value is a table of relaxations:

    max_length = 50                 # a larger maxLength
    extra_enum = ["Error"]          # enum values accepted besides the schema's
    min_items = 0                   # a smaller minItems (0: an empty array is allowed)
    allow_property = true           # the last member may appear although the schema lacks it
    extra_types = ["number"]        # JSON types accepted besides the schema's

One model table serves every OCPP version: a key whose action or member a version does not have
is left out of that version (1.6 `BootNotification.chargePointSerialNumber`, 2.x
`BootNotification.chargingStation.serialNumber`), and `check_relaxations` reports a key that
fits no version, or that does not fit the rule where its path exists. The relax key is also the
rule's name in `Verdict.relaxed` and in the `ocpp_gateway_relaxed_total{rule}` metric.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ocpp_gateway import _core
from ocpp_gateway.errors import ConfigError
from ocpp_gateway.schemas import VERSIONS

if TYPE_CHECKING:
    from ocpp_gateway._core import ModeName
    from ocpp_gateway.config import ValidationConfig

__all__ = [
    "build_model_rules",
    "check_relaxations",
    "model_policy",
    "relaxations",
    "schema_sets",
    "version_policy",
]

_MODES: dict[str, ModeName] = {"enforce": "enforce", "observe": "observe", "off": "off"}


def _mode(name: str) -> ModeName:
    try:
        return _MODES[name]
    except KeyError:
        raise ConfigError([f"unknown validation mode {name!r}"]) from None


def relaxations(table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The `relax` table of a model table, as plain dicts.

    Args:
        table: one `[validation.models.<model>]` table.

    Returns:
        key -> {kind: value}; empty when the model relaxes nothing.
    """
    relax = table.get("relax") or {}
    return {str(key): dict(value) for key, value in relax.items()}


def _split(default: str, table: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    overrides = {key: str(value) for key, value in table.items() if key != "relax"}
    return overrides.pop("default", default), overrides


def version_policy(validation: ValidationConfig, version: str) -> _core.Policy:
    """The policy of a version: the global one, with `versions.<version>` on top.

    Args:
        validation: the `[validation]` table.
        version: an OCPP version name.

    Returns:
        The compiled policy.

    Raises:
        ConfigError: an unknown mode (check-config reports it first).
    """
    default, overrides = _split(validation.default, validation.versions.get(version, {}))
    return _core.Policy(_mode(default), {**validation.overrides, **overrides})


def model_policy(validation: ValidationConfig, version: str, model: str) -> _core.Policy:
    """The full policy of a model in a version: the version policy, the model table on top
    (its `default` replaces the version default; `relax` is not a mode).

    Args:
        validation: the `[validation]` table.
        version: an OCPP version name.
        model: a key of `validation.models`.

    Returns:
        The compiled policy.

    Raises:
        ConfigError: an unknown mode.
    """
    version_default, version_overrides = _split(
        validation.default, validation.versions.get(version, {})
    )
    default, overrides = _split(version_default, validation.models[model])
    merged = {**validation.overrides, **version_overrides, **overrides}
    return _core.Policy(_mode(default), merged)


def schema_sets(validation: ValidationConfig) -> dict[str, _core.SchemaSet]:
    """Compile the schemas of every version as `serve` does (official ones plus `schema_dirs`).

    A version whose schemas cannot be compiled is left out.

    Args:
        validation: the `[validation]` table.

    Returns:
        version -> compiled schemas.
    """
    from ocpp_gateway.schemas import default_schemas, official_schema_dir

    out: dict[str, _core.SchemaSet] = {}
    for version in VERSIONS:
        extra = [
            os.path.join(d, version)
            for d in validation.schema_dirs
            if os.path.isdir(os.path.join(d, version))
        ]
        try:
            if extra:
                out[version] = _core.SchemaSet(version, str(official_schema_dir(version)), extra)
            else:
                out[version] = default_schemas(version)
        except (ValueError, OSError):
            continue
    return out


def build_model_rules(
    validation: ValidationConfig, schemas: Mapping[str, _core.SchemaSet]
) -> dict[str, _core.ModelRules]:
    """Compile the rules of every configured model, once per version (at start-up).

    Pass `rules[version]` as `model_rules` to every `Session` of that version, built over the
    same `schemas[version]`. Versions are left out when no model is configured.

    Args:
        validation: the `[validation]` table.
        schemas: version -> the schema set the sessions of that version use.

    Returns:
        version -> compiled model rules.

    Raises:
        ConfigError: a relaxation that fits no version or not the rule at its path (each
            message starts with its key, as from `check_relaxations`).
    """
    errors = check_relaxations(validation, schemas)
    if errors:
        raise ConfigError(errors)
    if not validation.models:
        return {}
    out: dict[str, _core.ModelRules] = {}
    for version, schema_set in schemas.items():
        models: dict[str, tuple[_core.Policy, dict[str, dict[str, Any]]]] = {}
        for model, table in validation.models.items():
            fitting = {
                key: relax
                for key, relax in relaxations(table).items()
                if schema_set.check_relaxation(key, relax) is None
            }
            models[model] = (model_policy(validation, version, model), fitting)
        try:
            out[version] = _core.ModelRules(schema_set, models)
        except ValueError as exc:
            raise ConfigError([f"validation.models: {exc}"]) from exc
    return out


def check_relaxations(
    validation: ValidationConfig, schemas: Mapping[str, _core.SchemaSet] | None = None
) -> list[str]:
    """Check every `relax` key of every model against the schemas of every version.

    A key must name an action and a member path of at least one version, and its relaxations
    must fit the rule there (a larger maxLength than the schema's, an enum to extend, ...).

    Args:
        validation: the `[validation]` table.
        schemas: version -> compiled schemas; None compiles them as `serve` does.

    Returns:
        One message per wrong key, starting with `validation.models.<model>.relax.<key>`.
    """
    wanted = [(m, t) for m, t in validation.models.items() if isinstance(t.get("relax"), Mapping)]
    if not wanted:
        return []
    sets = schema_sets(validation) if schemas is None else schemas
    errors: list[str] = []
    for model, table in wanted:
        for key, relax in table["relax"].items():
            where = f"validation.models.{model}.relax.{key}"
            if not isinstance(relax, Mapping):
                continue  # reported by the configuration checks
            misses: list[tuple[str, str]] = []
            invalid: str | None = None
            try:
                for schema_set in sets.values():
                    found = schema_set.check_relaxation(key, dict(relax))
                    if found is None:
                        continue
                    reason, message = found
                    if reason == "invalid":
                        invalid = invalid or f"{message} ({schema_set.version})"
                    else:
                        misses.append((reason, message))
            except ValueError as exc:
                errors.append(f"validation.models.{model}.relax.{exc}")
                continue
            if invalid is not None:
                errors.append(f"validation.models.{model}.relax.{invalid}")
            elif len(misses) == len(sets):
                detail = "; ".join(sorted({m.split(": ", 1)[1] for _, m in misses}))
                errors.append(f"{where}: no OCPP version has it ({detail})")
    return errors
