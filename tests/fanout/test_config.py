"""`[backends.<name>]`: loading, the primary it replaces `[upstream]` with, and what
check-config refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocpp_gateway.config import load
from ocpp_gateway.preflight import check_config
from ocpp_gateway.transports import LocalOptions, WebSocketOptions

GOOD = """
[backends.csms]
role = "primary"
url = "ws://127.0.0.1:9/ocpp"
[backends.ems]
role = "controller"
url = "ws://127.0.0.1:9/ems"
commands = ["SetChargingProfile", "ClearChargingProfile", "GetCompositeSchedule", "TriggerMessage"]
charge_points = ["site7-*"]
[backends.reporting]
role = "observer"
url = "ws://127.0.0.1:9/reporting"
[backends.next-csms]
role = "candidate"
url = "ws://127.0.0.1:9/next"
id_map = "{id_map}"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_issue_example_loads(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.format(id_map=tmp_path / "next.sqlite"))
    assert check_config(path) == []
    cfg, errors = load(path, {}, None)
    assert errors == []
    assert cfg.primary() is not None and cfg.primary()[0] == "csms"  # type: ignore[index]
    assert sorted(cfg.secondary_backends()) == ["ems", "next-csms", "reporting"]
    assert cfg.backends["ems"].charge_points == ("site7-*",)
    default = cfg.transport_options()["default"]
    assert isinstance(default, WebSocketOptions) and default.url == "ws://127.0.0.1:9/ocpp"


def test_upstream_stays_the_primary_shorthand(tmp_path: Path) -> None:
    text = '[backends.rep]\nrole = "observer"\nurl = "ws://127.0.0.1:9/rep"\n'
    path = write(tmp_path, text)
    errors = check_config(path, overrides={"upstream.url": "ws://127.0.0.1:9/csms"})
    assert errors == []
    cfg, _ = load(path, {}, {"upstream.url": "ws://127.0.0.1:9/csms"})
    default = cfg.transport_options()["default"]
    assert isinstance(default, WebSocketOptions) and default.url == "ws://127.0.0.1:9/csms"


def test_a_local_primary(tmp_path: Path) -> None:
    text = '[backends.me]\nrole = "primary"\ntype = "local"\n'
    cfg, errors = load(write(tmp_path, text), {}, None)
    assert errors == []
    assert isinstance(cfg.transport_options()["default"], LocalOptions)


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        (
            '[backends.rep]\nrole = "observer"\nurl = "ws://h/r"\n',
            None,
            "backends: no primary",
        ),
        (
            '[backends.a]\nrole = "primary"\nurl = "ws://h/a"\n'
            '[backends.b]\nrole = "primary"\nurl = "ws://h/b"\n',
            None,
            "backends: exactly one primary, got 2: backends.a, backends.b",
        ),
        (
            '[backends.a]\nrole = "primary"\nurl = "ws://h/a"\n',
            {"upstream.url": "ws://h/up"},
            "backends: exactly one primary, got 2: upstream.url, backends.a",
        ),
        (
            '[backends.e]\nrole = "controller"\nurl = "ws://h/e"\ncommands = ["Reset", "Nope"]\n',
            {"upstream.url": "ws://h/up"},
            "backends.e.commands: 'Nope' is no call a CSMS makes",
        ),
        (
            '[backends.e]\nrole = "controller"\nurl = "ws://h/e"\ncommands = ["Authorize"]\n',
            {"upstream.url": "ws://h/up"},
            "backends.e.commands: 'Authorize' is no call a CSMS makes",
        ),
        (
            '[backends.e]\nrole = "controller"\nurl = "ws://h/e"\n',
            {"upstream.url": "ws://h/up"},
            "backends.e.commands: a controller needs",
        ),
        (
            '[backends.o]\nrole = "observer"\nurl = "ws://h/e"\ncommands = ["Reset"]\n',
            {"upstream.url": "ws://h/up"},
            "backends.o.commands: only a controller sends commands",
        ),
        (
            '[backends.n]\nrole = "candidate"\nurl = "ws://h/n"\n',
            {"upstream.url": "ws://h/up"},
            "backends.n.id_map: a candidate needs a durable store",
        ),
        (
            '[backends.n]\nrole = "candidate"\ntype = "nats"\nurl = "nats://h:4222"\n'
            'id_map = "x.sqlite"\n',
            {"upstream.url": "ws://h/up"},
            "key-value store",
        ),
        (
            '[backends.o]\nrole = "observer"\nurl = "http://h/o"\n',
            {"upstream.url": "ws://h/up"},
            "backends.o.url: type 'websocket' expects ws:// or wss://",
        ),
        (
            '[backends.o]\nrole = "observer"\n',
            {"upstream.url": "ws://h/up"},
            "backends.o.url: type 'websocket' needs a url",
        ),
        (
            '[backends.o]\nrole = "observer"\nurl = "ws://h/o"\nqueue_frames = 0\n',
            {"upstream.url": "ws://h/up"},
            "backends.o.queue_frames: must be at least 1",
        ),
        (
            '[backends.o]\nrole = "watcher"\nurl = "ws://h/o"\n',
            {"upstream.url": "ws://h/up"},
            "backends.o.role: 'watcher' is not one of",
        ),
        (
            '[backends.o]\nrole = "observer"\nurl = "ws://h/o"\ncharge_points = [""]\n',
            {"upstream.url": "ws://h/up"},
            "backends.o.charge_points: an empty id or pattern",
        ),
    ],
)
def test_check_config_refuses(
    tmp_path: Path, text: str, overrides: dict[str, str] | None, expected: str
) -> None:
    errors = check_config(write(tmp_path, text), overrides=overrides)
    assert any(error.startswith(expected) or expected in error for error in errors), errors
