"""Tests of `ocpp_gateway.schemas`: where the official schemas come from and their cache."""

from pathlib import Path
from typing import get_args

import pytest

from ocpp_gateway import VERSIONS, SchemaSet, Session, default_schemas
from ocpp_gateway._core import OcppVersionName
from ocpp_gateway.schemas import SCHEMA_SUBDIRS, official_schema_dir


def test_one_list_of_versions_built_from_the_core() -> None:
    assert VERSIONS == ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
    assert get_args(OcppVersionName) == VERSIONS
    assert dict(SCHEMA_SUBDIRS) == {"ocpp1.6": "v16", "ocpp2.0.1": "v201", "ocpp2.1": "v21"}


@pytest.mark.parametrize("version", VERSIONS)
def test_official_dir_is_the_ocpp_package_layout(version: OcppVersionName) -> None:
    path = official_schema_dir(version)
    assert path.parts[-2:] == (SCHEMA_SUBDIRS[version], "schemas")
    request = "BootNotification.json" if version == "ocpp1.6" else "BootNotificationRequest.json"
    assert (path / request).is_file()


def test_unknown_version_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"ocpp1\.5"):
        official_schema_dir("ocpp1.5")  # type: ignore[arg-type]


@pytest.mark.parametrize("version", VERSIONS)
def test_default_schemas_compiled_once(version: OcppVersionName) -> None:
    first = default_schemas(version)
    assert isinstance(first, SchemaSet)
    assert first.version == version
    assert default_schemas(version) is first


def test_session_without_schemas_uses_the_cached_set() -> None:
    session = Session("ocpp1.6")
    verdict = session.from_charge_point(b'[2,"1","Heartbeat",{}]', 0.0)
    assert verdict.forward
    assert verdict.action == "Heartbeat"


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan")])
def test_session_rejects_a_useless_call_timeout(timeout: float) -> None:
    with pytest.raises(ValueError, match="call_timeout"):
        Session("ocpp1.6", call_timeout=timeout)


def test_session_rejects_unknown_version() -> None:
    with pytest.raises(ValueError, match="ocpp9"):
        Session("ocpp9")  # type: ignore[arg-type]


def test_verdict_is_frozen() -> None:
    verdict = Session("ocpp1.6").from_charge_point(b"[]", 0.0)
    with pytest.raises(AttributeError):
        verdict.forward = True  # type: ignore[misc]
    assert verdict.reply is not None
    assert verdict.reply.startswith(b'[4,"-1","FormationViolation"')


def test_schema_dir_of_another_version_fails_loudly(tmp_path: Path) -> None:
    from ocpp_gateway import SchemaError

    with pytest.raises(SchemaError, match="no request schema"):
        SchemaSet("ocpp2.1", str(official_schema_dir("ocpp2.0.1")))
    with pytest.raises(SchemaError):
        SchemaSet("ocpp1.6", str(tmp_path / "missing"))


def test_stats_count_what_the_sessions_judged() -> None:
    """The per-frame metrics are counted in Rust: sizes of every frame, forwarded messages by
    (direction, type, action), and each answered call's duration under the call's direction."""
    from ocpp_gateway import _core
    from ocpp_gateway.schemas import default_schemas

    schemas = default_schemas("ocpp1.6")
    stats = _core.Stats(schemas, [0.001, 0.01], [16.0, 64.0])
    session = _core.Session("ocpp1.6", schemas, None, 60.0, stats=stats)
    call = b'[2,"1","Heartbeat",{}]'
    session.from_charge_point(call, 1.0)
    result = b'[3,"1",{"currentTime":"2025-01-01T00:00:00Z"}]'
    session.from_csms(result, 1.002)
    session.from_charge_point(b"not json", 1.0)
    messages, durations, sizes = stats.take()
    assert messages == [("cp_to_csms", 2, "Heartbeat", 1), ("csms_to_cp", 3, "Heartbeat", 1)]
    [(direction, action, counts, total)] = durations
    assert (direction, action, counts) == ("cp_to_csms", "Heartbeat", [0, 1, 0])
    assert abs(total - 0.002) < 1e-9
    assert sizes == [
        ("cp_to_csms", [1, 1, 0], float(len(call) + len(b"not json"))),
        ("csms_to_cp", [0, 1, 0], float(len(result))),
    ]
    assert stats.take() == ([], [], [])
    other = _core.Stats(default_schemas("ocpp2.0.1"), [], [])
    try:
        _core.Session("ocpp1.6", schemas, None, 60.0, stats=other)
    except ValueError as exc:
        assert "another version" in str(exc)
    else:
        raise AssertionError("stats of another version must be refused")
