"""Unit tests of the simulator's pieces that need no network: stats, profiles, answers."""

from __future__ import annotations

import dataclasses

import pytest

from ocpp_gateway.simulate import PROFILES, FleetStats, Profile, answer_call, quantile


def test_quantiles_are_within_the_bucket_resolution() -> None:
    stats = FleetStats()
    for ms in range(1, 101):  # 1 ms .. 100 ms, one each
        stats.record_answer("Heartbeat", ms / 1000)
    snapshot = stats.snapshot()
    p50 = snapshot.latency_quantile(0.5)
    p99 = snapshot.latency_quantile(0.99, "Heartbeat")
    assert p50 is not None and p99 is not None
    assert 0.050 / 1.05 <= p50 <= 0.050 * 1.05
    assert 0.099 / 1.05 <= p99 <= 0.099 * 1.05
    assert snapshot.latency_quantile(0.5, "Authorize") is None
    assert quantile([0] * 10, 0.5) is None
    with pytest.raises(ValueError):
        quantile(snapshot.latency, 1.5)


def test_snapshot_is_a_copy() -> None:
    stats = FleetStats()
    stats.record_sent("Heartbeat")
    stats.record_error("Heartbeat", "GenericError")
    snapshot = stats.snapshot(at=1.0)
    stats.record_sent("Heartbeat")
    stats.record_error("Heartbeat", "GenericError")
    assert snapshot.sent == {"Heartbeat": 1} and snapshot.error_codes == {"GenericError": 1}
    assert stats.total_sent() == 2 and stats.total_errors() == 2


def test_profiles_come_in_both_versions_and_validate() -> None:
    names = {name.rsplit("-", 1)[0] for name in PROFILES}
    for name in names:
        assert PROFILES[f"{name}-1.6"].version == "ocpp1.6"
        assert PROFILES[f"{name}-2.0.1"] == PROFILES[f"{name}-1.6"].with_version("ocpp2.0.1")
    for bad in (
        {"version": "ocpp2.1"},
        {"connectors": 0},
        {"meter_samples": 0},
        {"misbehave_fraction": 1.5},
        {"reconnect_min": 2.0, "reconnect_max": 1.0},
    ):
        with pytest.raises(ValueError):
            dataclasses.replace(Profile(), **bad)


def test_answers_echo_what_the_csms_asked_for() -> None:
    request = {
        "getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        ]
    }
    answer = answer_call("ocpp2.0.1", "GetVariables", request)
    assert answer is not None
    (result,) = answer["getVariableResult"]
    assert result["component"] == {"name": "OCPPCommCtrlr"}
    assert result["variable"] == {"name": "HeartbeatInterval"}
    assert answer_call("ocpp1.6", "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    assert answer_call("ocpp1.6", "NoSuchAction", {}) is None
