"""Options of `ocpp-gateway bench` checked before a run starts: where the baseline relays are."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocpp_gateway.bench import main
from ocpp_gateway.bench.targets import BaselinesNotFound, find_baselines

REPO = Path(__file__).resolve().parents[2]
BASELINES = REPO / "benches" / "baselines"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCPP_BENCH_BASELINES", raising=False)


def _fake_site(tmp_path: Path) -> Path:
    module = tmp_path / "site-packages" / "ocpp_gateway" / "bench" / "targets.py"
    module.parent.mkdir(parents=True)
    module.touch()
    return module


def test_found_from_the_package_source_when_run_elsewhere(tmp_path: Path) -> None:
    # As in a checkout installed with `pip install -e .`: the package's source is in the clone.
    source = REPO / "python" / "ocpp_gateway" / "bench" / "targets.py"
    assert find_baselines(cwd=tmp_path, package_file=source) == BASELINES


def test_found_from_a_directory_inside_the_clone(tmp_path: Path) -> None:
    found = find_baselines(cwd=REPO / "tests" / "bench", package_file=_fake_site(tmp_path))
    assert found == BASELINES


def test_explicit_directory_wins(tmp_path: Path) -> None:
    copy = tmp_path / "mine"
    copy.mkdir()
    for name in ("bare_relay.py", "ocpp_lib_relay.py"):
        (copy / name).write_bytes((BASELINES / name).read_bytes())
    assert find_baselines(copy, cwd=REPO) == copy


def test_not_found_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(BaselinesNotFound, match="--baselines DIR"):
        find_baselines(cwd=tmp_path, package_file=_fake_site(tmp_path))


def test_bad_environment_variable_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCPP_BENCH_BASELINES", str(tmp_path))
    with pytest.raises(BaselinesNotFound, match="OCPP_BENCH_BASELINES"):
        find_baselines(cwd=REPO)


def test_bad_option_fails_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    argv = ["--smoke", "--quiet", "--out", str(out), "--baselines", str(tmp_path)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "--baselines" in error and "bare_relay.py" in error
    assert not out.exists()  # no run started, no report directory made
