"""Admission rules as plain functions: path, subprotocol and takeover decisions without sockets."""

from __future__ import annotations

import pytest

from ocpp_gateway.admission import (
    MAX_ID_LENGTH,
    Refusal,
    check_path,
    negotiate_subprotocol,
    takeover_rule,
)


@pytest.mark.parametrize(
    ("charge_point_id", "expected"),
    [
        ("CP-1", None),
        ("é" * MAX_ID_LENGTH, None),
        ("", Refusal("bad_path", 404, "missing charge point id")),
        ("x" * (MAX_ID_LENGTH + 1), Refusal("bad_path", 400, "invalid charge point id")),
        ("a:b", Refusal("bad_path", 400, "invalid charge point id")),
    ],
)
def test_path_rules(charge_point_id: str, expected: Refusal | None) -> None:
    assert check_path(charge_point_id) == expected


def test_subprotocol_keeps_the_clients_spelling_and_order() -> None:
    assert negotiate_subprotocol(["OCPP2.0.1, ocpp1.6"]) == "OCPP2.0.1"
    assert negotiate_subprotocol(["ocpp2.1"], supported=("ocpp1.6",)) is None


@pytest.mark.parametrize(
    ("policy", "authenticated", "configured", "rule"),
    [
        ("refuse", True, True, "refuse"),
        ("refuse", False, False, "refuse"),
        ("replace", True, True, "replace"),
        # An unauthenticated newcomer never displaces at once (DESIGN: rules that keep data safe).
        ("replace", False, True, "refuse"),
        ("replace", False, False, "ping"),
        ("ping", True, True, "ping"),
        ("ping", False, True, "refuse"),
        # Without authentication configured, a charger with a half-open old socket must be able
        # to come back: the live one is pinged.
        ("ping", False, False, "ping"),
    ],
)
def test_takeover_rule(policy: str, authenticated: bool, configured: bool, rule: str) -> None:
    assert takeover_rule(policy, authenticated, configured) == rule
