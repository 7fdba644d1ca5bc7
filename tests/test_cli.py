"""The command line: check-config output and exit status, help, delegation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocpp_gateway.cli import main


def test_check_config_ok_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text('port = 9000\n[upstream]\nurl = "ws://127.0.0.1:9/ocpp"\n')
    assert main(["check-config", str(good)]) == 0
    assert "ok" in capsys.readouterr().out

    bad = tmp_path / "bad.toml"
    bad.write_text('port = 70000\nlog_level = "loud"\n')
    assert main(["check-config", str(bad)]) != 0
    out = capsys.readouterr().out
    assert "port:" in out
    assert "log_level:" in out


def test_unknown_command_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out


def test_serve_rejects_an_invalid_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("workers = -1\n")
    assert main(["serve", "--config", str(bad)]) == 2
    assert "workers:" in capsys.readouterr().err
