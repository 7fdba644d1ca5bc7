"""The closed sets of reasons in code are the ones the README lists as metric labels."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from ocpp_gateway.reasons import CloseReason, RefusalReason, SecurityRefusal
from ocpp_gateway.security import SecurityLayer

README = Path(__file__).resolve().parents[1] / "README.md"


def _listed(after: str, until: str) -> set[str]:
    """The `backticked` names in the README between two phrases."""
    text = README.read_text(encoding="utf-8")
    start = text.index(after) + len(after)
    return set(re.findall(r"`([a-z_]+)`", text[start : text.index(until, start)]))


def test_close_reasons_are_the_readmes() -> None:
    listed = _listed("`connections_closed_total{reason}`:", "Per-frame counts")
    assert listed == set(typing.get_args(CloseReason))


def test_refusal_reasons_are_the_readmes_and_the_security_layers() -> None:
    listed = _listed("`handshakes_refused_total{reason}`:", "`connections_closed_total")
    security = set(re.findall(r'"([a-z_]+)"', SecurityLayer.__doc__ or ""))
    assert security == set(typing.get_args(SecurityRefusal))
    assert listed | security == set(typing.get_args(RefusalReason))
    assert not listed & security
