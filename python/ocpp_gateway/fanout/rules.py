"""The rules of several backends per charge point, as plain functions: no I/O, tested by tables.

- which backends serve a charge point (`serves`: ids and glob patterns);
- whether a backend's CALL may reach the charge point (`command_refusal`): only a controller's,
  only for the actions it lists; every other CALL is answered by the gateway with a CALLERROR
  `SecurityError` and never reaches the charge point. SecurityError because the refusal is one
  of authorisation: the charge point may well support the action (NotSupported would say it
  does not), and the request itself is well formed (no FormationViolation/ProtocolError);
- which configured commands name no action a CSMS sends in any version served
  (`unknown_commands`, for check-config);
- which way a frame goes to a second backend, and how its UniqueId is restored
  (`restore_unique_id`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

import orjson

__all__ = [
    "REFUSAL_CODE",
    "command_refusal",
    "restore_unique_id",
    "serves",
    "unknown_commands",
]

#: The CALLERROR code of a backend's command the gateway refuses (the same in 1.6 and 2.x).
REFUSAL_CODE = "SecurityError"


def serves(patterns: Iterable[str], charge_point_id: str) -> bool:
    """Whether a backend limited to `patterns` serves a charge point.

    Args:
        patterns: ids or glob patterns (`fnmatch`, case-sensitive); empty means every one.
        charge_point_id: the charge point's identity.

    Returns:
        True when the backend serves it.
    """
    found = False
    for pattern in patterns:
        found = True
        if fnmatch.fnmatchcase(charge_point_id, pattern):
            return True
    return not found


def command_refusal(role: str, commands: frozenset[str], action: str) -> str | None:
    """Whether a CALL from a non-primary backend may go to the charge point.

    Args:
        role: the backend's role ("controller", "observer", "candidate").
        commands: the actions it may send (a controller's `commands`).
        action: the CALL's action.

    Returns:
        None when it may go; else the CALLERROR's description (code `REFUSAL_CODE`).
    """
    if role != "controller":
        return f"a {role} backend sends no commands"
    if action not in commands:
        return f"{action} is not among this backend's commands"
    return None


def unknown_commands(
    commands: Iterable[str], directions: Mapping[str, Mapping[str, str]]
) -> list[str]:
    """The configured commands that name no call a CSMS makes in any version served.

    Args:
        commands: a controller's `commands`.
        directions: per OCPP version, action -> its direction ("cp_to_csms", "csms_to_cp",
            "both"), as `SchemaSet.actions()` gives them.

    Returns:
        The unknown ones, in their order.
    """
    return [
        action
        for action in commands
        if not any(table.get(action) in ("csms_to_cp", "both") for table in directions.values())
    ]


def restore_unique_id(frame: bytes, assigned: str, original: str) -> bytes:
    """The charge point's answer to a gateway-assigned UniqueId, with the backend's own
    UniqueId back in its place.

    Args:
        frame: the answer (a CALLRESULT, CALLERROR or CALLRESULTERROR).
        assigned: the UniqueId the gateway gave the call ("gw-" + hex: JSON needs no escape).
        original: the backend's UniqueId.

    Returns:
        The frame with the first occurrence of the assigned UniqueId (its second element)
        replaced; the rest of the bytes as the charge point sent them.
    """
    return frame.replace(b'"' + assigned.encode() + b'"', orjson.dumps(original), 1)
