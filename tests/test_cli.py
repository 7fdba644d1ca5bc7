"""The command line: check-config output and exit status, help, --version, delegation."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ocpp_gateway.cli import _add_config_arguments, main


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


def test_version_names_the_package_the_core_and_the_schemas(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from importlib import metadata

    from ocpp_gateway import _core

    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"ocpp-gateway {metadata.version('ocpp-gateway')}",
        f"core (Rust) {_core.__version__}",
        f"ocpp schemas {metadata.version('ocpp')}",
    ]


def test_check_config_reads_the_environment_as_serve_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "good.toml"
    good.write_text("port = 9000\n")
    monkeypatch.setenv("OCPP_GATEWAY_PORT", "not-a-port")
    assert main(["check-config", str(good)]) == 1
    assert "port: expected an integer" in capsys.readouterr().out
    # serve refuses the same environment, with the same message.
    assert main(["serve", "--config", str(good)]) == 2
    assert "port: expected an integer" in capsys.readouterr().err
    monkeypatch.setenv("OCPP_GATEWAY_PORT", "9001")
    assert main(["check-config", "--config", str(good)]) == 0
    assert "ok" in capsys.readouterr().out


def test_check_config_reports_a_misspelled_variable_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCPP_GATEWAY_UPSTREM_URL", "ws://127.0.0.1:9/ocpp")
    assert main(["check-config"]) == 1
    out = capsys.readouterr().out
    assert "OCPP_GATEWAY_UPSTREM_URL: unknown setting" in out
    assert "did you mean OCPP_GATEWAY_UPSTREAM__URL?" in out


def test_check_config_takes_the_flags_of_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text("port = 9000\n")
    assert main(["check-config", str(good), "--port", "70000"]) == 1
    assert "port: 70000" in capsys.readouterr().out
    assert main(["check-config", str(good), "--upstream", "http://csms/ocpp"]) == 1
    assert "upstream.url:" in capsys.readouterr().out
    assert main(["check-config", str(good), "--tls-cert", str(tmp_path / "cert.pem")]) == 1
    assert "security.tls_cert:" in capsys.readouterr().out
    assert main(["check-config", "--host", "127.0.0.1", "--workers", "2"]) == 0
    with pytest.raises(SystemExit):
        main(["check-config", str(good), "--config", str(tmp_path / "other.toml")])


def test_serve_and_check_config_take_the_same_settings_flags() -> None:
    from ocpp_gateway.cli import _serve_parser

    serve = {a.dest for a in _serve_parser()._actions if a.option_strings}
    probe = argparse.ArgumentParser()
    _add_config_arguments(probe)
    shared = {a.dest for a in probe._actions if a.option_strings}
    # The hidden flags the supervisor gives its workers are not settings.
    assert serve - shared == {"reuse_port", "worker_id", "peer_dir"}
    assert {"config", "host", "port", "upstream", "workers", "log_level"} <= shared
    assert {"log_format", "admin_port"} <= shared
    assert {"credentials", "tls_cert", "tls_key", "client_ca"} <= shared
