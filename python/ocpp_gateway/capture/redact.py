"""Redaction of secrets (and optionally idTags) in captured payloads: plain functions on JSON.

`Redactor.apply(action, message_type, payload)` changes the payload in place and returns the
paths it changed, so the record can say what was hidden. The rules:

- 1.6 `ChangeConfiguration` (CALL): `value` when `key` is a secret name;
- 1.6 `GetConfiguration` (CALLRESULT): `configurationKey[].value` of secret keys;
- 2.x `SetVariables` (CALL): `setVariableData[].attributeValue` of secret variables;
- 2.x `GetVariables` (CALLRESULT): `getVariableResult[].attributeValue` of secret variables;
- 2.x `NotifyReport` (CALL): `reportData[].variableAttribute[].value` of secret variables;
- 2.x `SetNetworkProfile` (CALL): `connectionData.vpn.key` and every member named like a
  password (`apn.apnPassword`, `vpn.password`, 2.1 `basicAuthPassword`), wherever it is;
- 2.x `Get15118EVCertificate` (CALLRESULT): `exiResponse`, which carries the contract
  certificate's (encrypted) private key;
- with `hash_id_tags`: every `idTag`/`parentIdTag` string (1.6) and every `idToken` string of
  an `idToken`/`groupIdToken` object (2.x), in any action, as "sha256:" + 16 hex digits.

A result whose call is unknown (unmatched, so without an action) gets every result rule.
A secret name is one of the configured names or any name containing "password", compared
without case.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "Redactor"]

MASK = "***"
_PASSWORD_MEMBERS = ("password", "apnPassword", "basicAuthPassword")


class Redactor:
    """The redaction rules of one configuration.

    Args:
        secret_names: configuration keys and variable names whose values are secrets.
        redact: apply the secret rules (False: only idTag hashing, if asked).
        hash_id_tags: hash idTags and idTokens.
        salt: mixed into those hashes.
    """

    __slots__ = ("_hash", "_names", "_redact", "_salt")

    def __init__(
        self, secret_names: Iterable[str], redact: bool, hash_id_tags: bool, salt: str = ""
    ) -> None:
        self._names = frozenset(name.lower() for name in secret_names)
        self._redact = redact
        self._hash = hash_id_tags
        self._salt = salt.encode()

    @property
    def active(self) -> bool:
        """Whether any rule applies at all."""
        return self._redact or self._hash

    def secret(self, name: object) -> bool:
        """Args:
            name: a configuration key or variable name.

        Returns:
            True when its value is a secret.
        """
        if not isinstance(name, str):
            return False
        lowered = name.lower()
        return lowered in self._names or "password" in lowered

    def hash_tag(self, tag: str) -> str:
        """Args:
            tag: an idTag or idToken.

        Returns:
            "sha256:" and the first 16 hex digits of the salted hash.
        """
        return "sha256:" + hashlib.sha256(self._salt + tag.encode()).hexdigest()[:16]

    def apply(self, action: str | None, message_type: int, payload: Any) -> list[str]:
        """Redact one payload in place.

        Args:
            action: the action of the CALL (or of the call a result answers).
            message_type: 2 (CALL), 3 (CALLRESULT), ... as on the wire.
            payload: the parsed payload (any JSON value).

        Returns:
            The paths changed ("configurationKey.2.value"), empty when nothing was.
        """
        changed: list[str] = []
        if not isinstance(payload, dict):
            return changed
        if self._redact:
            if action is not None:
                rule = _RULES.get((action, message_type))
                if rule is not None:
                    rule(self, payload, changed)
            else:
                # A result whose call is unknown (dropped as unmatched): every result rule,
                # since each looks for members of its own action only.
                for (_, kind), rule in _RULES.items():
                    if kind == message_type:
                        rule(self, payload, changed)
        if self._hash:
            self._hash_tags(payload, "", changed)
        return changed

    def _hash_tags(self, value: Any, path: str, changed: list[str]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}{key}"
                if key in ("idTag", "parentIdTag") and isinstance(item, str):
                    value[key] = self.hash_tag(item)
                    changed.append(where)
                elif (
                    key in ("idToken", "groupIdToken")
                    and isinstance(item, dict)
                    and isinstance(item.get("idToken"), str)
                ):
                    item["idToken"] = self.hash_tag(item["idToken"])
                    changed.append(f"{where}.idToken")
                    for inner, nested in item.items():
                        if inner != "idToken":
                            self._hash_tags(nested, f"{where}.{inner}.", changed)
                else:
                    self._hash_tags(item, where + ".", changed)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._hash_tags(item, f"{path}{index}.", changed)


def _mask(table: dict[str, Any], key: str, path: str, changed: list[str]) -> None:
    if key in table:
        table[key] = MASK
        changed.append(path)


def _change_configuration(r: Redactor, payload: dict[str, Any], changed: list[str]) -> None:
    if r.secret(payload.get("key")):
        _mask(payload, "value", "value", changed)


def _get_configuration(r: Redactor, payload: dict[str, Any], changed: list[str]) -> None:
    for index, entry in _items(payload.get("configurationKey")):
        if r.secret(entry.get("key")):
            _mask(entry, "value", f"configurationKey.{index}.value", changed)


def _variable_name(entry: dict[str, Any]) -> object:
    variable = entry.get("variable")
    return variable.get("name") if isinstance(variable, dict) else None


def _set_variables(r: Redactor, payload: dict[str, Any], changed: list[str]) -> None:
    for index, entry in _items(payload.get("setVariableData")):
        if r.secret(_variable_name(entry)):
            _mask(entry, "attributeValue", f"setVariableData.{index}.attributeValue", changed)


def _get_variables(r: Redactor, payload: dict[str, Any], changed: list[str]) -> None:
    for index, entry in _items(payload.get("getVariableResult")):
        if r.secret(_variable_name(entry)):
            _mask(entry, "attributeValue", f"getVariableResult.{index}.attributeValue", changed)


def _notify_report(r: Redactor, payload: dict[str, Any], changed: list[str]) -> None:
    for index, entry in _items(payload.get("reportData")):
        if r.secret(_variable_name(entry)):
            for inner, attribute in _items(entry.get("variableAttribute")):
                where = f"reportData.{index}.variableAttribute.{inner}.value"
                _mask(attribute, "value", where, changed)


def _set_network_profile(r: Redactor, payload: dict[str, Any], changed: list[str]) -> None:
    data = payload.get("connectionData")
    if not isinstance(data, dict):
        return
    vpn = data.get("vpn")
    if isinstance(vpn, dict):
        _mask(vpn, "key", "connectionData.vpn.key", changed)
    _mask_members(data, "connectionData.", changed)


def _mask_members(value: Any, path: str, changed: list[str]) -> None:
    """Mask every member named like a password, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _PASSWORD_MEMBERS and isinstance(item, str):
                value[key] = MASK
                changed.append(path + key)
            else:
                _mask_members(item, f"{path}{key}.", changed)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _mask_members(item, f"{path}{index}.", changed)


def _ev_certificate(r: Redactor, payload: dict[str, Any], changed: list[str]) -> None:
    _mask(payload, "exiResponse", "exiResponse", changed)


def _items(value: object) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, dict)]


_RULES = {
    ("ChangeConfiguration", 2): _change_configuration,
    ("GetConfiguration", 3): _get_configuration,
    ("SetVariables", 2): _set_variables,
    ("GetVariables", 3): _get_variables,
    ("NotifyReport", 2): _notify_report,
    ("SetNetworkProfile", 2): _set_network_profile,
    ("Get15118EVCertificate", 3): _ev_certificate,
}
