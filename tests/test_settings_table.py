"""The README's settings table: complete, true to the loader, and in sync with the sources."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ocpp_gateway.config import GatewayConfig, load_config, settings_reference
from ocpp_gateway.errors import ConfigError
from ocpp_gateway.settings_table import (
    BEGIN,
    END,
    OPTION_TABLES,
    flags,
    main,
    render,
    render_options,
)
from ocpp_gateway.transports import transport_types

README = Path(__file__).resolve().parents[1] / "README.md"


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        default = GatewayConfig() if cls is GatewayConfig else cls()
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            keys.extend(_leaf_keys(type(value), key))
        else:
            keys.append(key)
    return keys


def test_every_setting_is_listed_once_with_a_description() -> None:
    rows = settings_reference()
    assert [row.key for row in rows] == _leaf_keys(GatewayConfig)
    for row in rows:
        assert row.doc and row.type, row


def test_every_listed_variable_sets_its_setting() -> None:
    # A value of the right type for each row's variable must land on that row's key.
    samples = {"integer": "7", "number": "7.5", "boolean": "true", "table": "{}"}
    for row in settings_reference():
        if row.type.startswith("one of"):
            value = row.type.split('"')[1]
        else:
            value = next((v for t, v in samples.items() if row.type.startswith(t)), "x,y")
        if row.type.startswith("string"):
            value = "ws://127.0.0.1:9/ocpp" if row.key == "upstream.url" else "some-value"
        try:
            cfg = load_config(None, {row.env: value})
        except ConfigError as exc:  # value checks may refuse the sample; the key must be known
            assert not any("unknown setting" in e for e in exc.errors), (row.env, exc.errors)
            assert all(e.startswith(row.key.split(".")[0]) for e in exc.errors), exc.errors
            continue
        node: object = cfg
        for part in row.key.split("."):
            node = getattr(node, part)
        assert node not in (None, (), ""), (row.env, node)


def test_the_flags_column_names_the_serve_flags() -> None:
    assert flags() == {
        "host": "--host",
        "port": "--port",
        "upstream.url": "--upstream",
        "workers": "--workers",
        "log_level": "--log-level",
        "validation.default": "--observe",
        "log_format": "--log-format",
        "admin.port": "--admin-port",
        "security.credentials_file": "--credentials",
        "security.tls_cert": "--tls-cert",
        "security.tls_key": "--tls-key",
        "security.client_ca": "--client-ca",
    }


def test_the_readme_table_is_up_to_date() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert render() in text, "run: python -m ocpp_gateway.settings_table --write README.md"
    assert main(["--check", str(README)]) == 0


def test_check_fails_on_a_stale_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(README.read_text(encoding="utf-8").replace("`OCPP_GATEWAY_PORT`", "`PORT`"))
    assert main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["--write", str(stale)]) == 0
    assert main(["--check", str(stale)]) == 0


def test_the_broker_options_tables_are_complete_and_up_to_date(tmp_path: Path) -> None:
    brokers = README.parent / "docs" / "brokers.md"
    text = brokers.read_text(encoding="utf-8")
    assert main(["--check", str(brokers)]) == 0
    for kind in OPTION_TABLES:
        table = render_options(kind)
        assert table in text, f"run: python -m ocpp_gateway.settings_table --write {brokers}"
        options = transport_types()[kind].options()
        settable = [f.name for f in dataclasses.fields(options) if f.init]
        assert [line.split("`")[1] for line in table.splitlines()[4:-2]] == settable
    # A new option without its row is caught.
    stale = tmp_path / "brokers.md"
    stale.write_text(text.replace("| `command_queue` |", "| `queue` |"), encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
