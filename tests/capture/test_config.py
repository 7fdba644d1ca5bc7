"""The `[capture]` settings: read from TOML and the environment, out-of-range values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocpp_gateway.config import load_config
from ocpp_gateway.errors import ConfigError
from ocpp_gateway.preflight import check_config


def test_the_table_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[capture]\ncharge_points = ["CP-1", "site7-*"]\ndirectory = "/var/traces"\n'
        "hash_id_tags = true\n",
        encoding="utf-8",
    )
    cfg = load_config(str(path), {}, {}).capture
    assert cfg.charge_points == ("CP-1", "site7-*") and cfg.directory == "/var/traces"
    assert cfg.hash_id_tags and cfg.redact  # redaction stays on by default
    env = {
        "OCPP_GATEWAY_CAPTURE__CHARGE_POINTS": "A,B-*",
        "OCPP_GATEWAY_CAPTURE__DEFAULT_FRAMES": "50",
    }
    from_env = load_config(None, env, {}).capture
    assert from_env.charge_points == ("A", "B-*") and from_env.default_frames == 50


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("capture.ring_frames", 0, "capture.ring_frames: must be at least 1"),
        ("capture.ring_bytes", 0, "capture.ring_bytes: must be at least 1"),
        ("capture.files_keep", 0, "capture.files_keep: must be at least 1"),
        ("capture.default_seconds", 0.0, "capture.default_seconds: must be positive"),
        ("capture.file_max_bytes", 100, "capture.file_max_bytes: must be at least 4096"),
        ("capture.charge_points", [""], "capture.charge_points: an empty id or pattern"),
    ],
)
def test_out_of_range_values_are_refused(key: str, value: object, message: str) -> None:
    assert message in check_config(None, {}, {key: value})
    with pytest.raises(ConfigError):
        load_config(None, {}, {key: value})


def test_an_unknown_key_is_refused() -> None:
    errors = check_config(None, {"OCPP_GATEWAY_CAPTURE__CHARGEPOINTS": "x"}, {})
    assert errors == [
        "OCPP_GATEWAY_CAPTURE__CHARGEPOINTS: unknown setting "
        "(did you mean OCPP_GATEWAY_CAPTURE__CHARGE_POINTS?)"
    ]
