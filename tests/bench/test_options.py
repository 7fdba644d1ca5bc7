"""Options of `ocpp-gateway bench` checked before a run starts: where the baseline relays are."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocpp_gateway.bench import main
from ocpp_gateway.bench.targets import PACKAGED_BASELINES, BaselinesNotFound, find_baselines

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCPP_BENCH_BASELINES", raising=False)


def test_the_package_ships_the_baselines_and_the_repository_links_to_them() -> None:
    import ocpp_gateway.bench.baselines as shipped

    assert find_baselines() == PACKAGED_BASELINES == Path(shipped.__file__).parent
    for name in ("bare_relay.py", "ocpp_lib_relay.py"):
        assert (PACKAGED_BASELINES / name).is_file()
        linked = REPO / "benches" / "baselines" / name
        assert linked.resolve() == (PACKAGED_BASELINES / name).resolve()


def test_explicit_directory_wins(tmp_path: Path) -> None:
    copy = tmp_path / "mine"
    copy.mkdir()
    for name in ("bare_relay.py", "ocpp_lib_relay.py"):
        (copy / name).write_bytes((PACKAGED_BASELINES / name).read_bytes())
    assert find_baselines(copy) == copy


def test_environment_variable_names_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("bare_relay.py", "ocpp_lib_relay.py"):
        (tmp_path / name).write_bytes((PACKAGED_BASELINES / name).read_bytes())
    monkeypatch.setenv("OCPP_BENCH_BASELINES", str(tmp_path))
    assert find_baselines() == tmp_path


def test_bad_environment_variable_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCPP_BENCH_BASELINES", str(tmp_path))
    with pytest.raises(BaselinesNotFound, match="OCPP_BENCH_BASELINES"):
        find_baselines()


def test_bad_option_fails_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    argv = ["--smoke", "--quiet", "--out", str(out), "--baselines", str(tmp_path)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--baselines" in error and "bare_relay.py" in error
    assert not out.exists()  # no run started, no report directory made
