"""A candidate backend's answer compared with the primary's: plain functions, tested by tables.

The fields that matter are the decisions a CSMS takes, wherever they are in the payload:
every member named `status` (BootNotification, DataTransfer, the commands' answers, and the
`idTagInfo.status` / `idTokenInfo.status` of Authorize, StartTransaction, StopTransaction and
TransactionEvent) and every member named `interval` (BootNotification's heartbeat interval).
Everything else is ignored: timestamps (`currentTime`, `expiryDate`), ids the candidate
assigns itself (`transactionId`, `parentIdTag`, `groupIdToken`), costs and texts. A CALLERROR
agrees with a CALLERROR of the same error code only; a CALLRESULT never agrees with a CALLERROR.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

__all__ = ["Outcome", "compare_answers", "decisions"]

#: How a candidate's answer compared: "agree", "disagree", "missing" (no answer within the
#: call timeout, or its link was down).
Outcome = Literal["agree", "disagree", "missing"]

_DECISIONS = frozenset(("status", "interval"))
_CALLRESULT = 3


def decisions(payload: Any, path: str = "") -> dict[str, Any]:
    """The members of a payload that are compared.

    Args:
        payload: a decoded CALLRESULT payload.
        path: the dotted path of `payload` inside the answer.

    Returns:
        Dotted path -> value, for every `status` and `interval` member at any depth (in lists:
        `path[i]`).
    """
    found: dict[str, Any] = {}
    if isinstance(payload, dict):
        for key, value in payload.items():
            inner = f"{path}.{key}" if path else str(key)
            if key in _DECISIONS and not isinstance(value, dict | list):
                found[inner] = value
            else:
                found.update(decisions(value, inner))
    elif isinstance(payload, list):
        for index, value in enumerate(payload):
            found.update(decisions(value, f"{path}[{index}]"))
    return found


def _essence(frame: bytes) -> tuple[str, Any]:
    """("result", its decisions) or ("error", its code) of an answer's bytes."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return "unreadable", None
    if not isinstance(message, list) or len(message) < 3:
        return "unreadable", None
    if message[0] == _CALLRESULT:
        return "result", decisions(message[2])
    return "error", message[2]


def compare_answers(primary: bytes, candidate: bytes) -> tuple[Outcome, str]:
    """Compare a candidate's answer with the primary's.

    Args:
        primary: the primary's answer.
        candidate: the candidate's answer to the same call.

    Returns:
        ("agree", "") or ("disagree", what differs: the members, or the kinds of answer).
    """
    kind_p, essence_p = _essence(primary)
    kind_c, essence_c = _essence(candidate)
    if kind_p != kind_c:
        return "disagree", f"primary answered {kind_p}, candidate {kind_c}"
    if essence_p == essence_c:
        return "agree", ""
    if kind_p == "error":
        return "disagree", f"error code {essence_p} vs {essence_c}"
    differing = sorted(
        key for key in set(essence_p) | set(essence_c) if essence_p.get(key) != essence_c.get(key)
    )
    detail = ", ".join(
        f"{key}: {essence_p.get(key)!r} vs {essence_c.get(key)!r}" for key in differing
    )
    return "disagree", detail
