"""scripts/test and scripts/lint: they name what is missing before running anything, and
scripts/test refuses to test an installed copy instead of this checkout's sources."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(script: str, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": path, **env},
    )


def test_lint_names_every_missing_tool_and_runs_nothing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "python3", f'exec {sys.executable} "$@"')
    # Nothing else: no cargo, ruff, mypy or promtool on this PATH.
    result = _run("lint", f"{bin_dir}:/usr/bin:/bin")
    assert result.returncode == 1
    for tool in ("cargo:", "ruff:", "mypy:"):
        if not shutil.which(tool[:-1], path="/usr/bin:/bin"):
            assert tool in result.stderr, result.stderr
    assert "bash .ci/run" in result.stderr
    assert result.stdout == ""  # stopped before the first lint


def test_test_refuses_an_installed_copy_of_the_package(tmp_path: Path) -> None:
    # A copy of the package elsewhere, found first by python3: the tests would not see edits.
    copy = tmp_path / "site"
    shutil.copytree(
        ROOT / "python" / "ocpp_gateway",
        copy / "ocpp_gateway",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "python3", f'PYTHONPATH={copy} exec {sys.executable} "$@"')
    for tool in ("cargo", "ruff", "mypy", "promtool"):
        _tool(bin_dir, tool, f"echo {tool} must not run >&2; exit 3")
    result = _run("test", f"{bin_dir}:/usr/bin:/bin")
    assert result.returncode == 1, result.stderr
    assert f"imports ocpp_gateway from {copy / 'ocpp_gateway'}" in result.stderr
    assert "pip install -e" in result.stderr
    assert "must not run" not in result.stderr


def test_test_names_missing_tools_before_running_anything(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A python3 without pytest and without the package: what `pip install .` alone leaves
    # out (the test extra), seen from a bare interpreter.
    _tool(bin_dir, "python3", f'exec {sys.executable} -I -S "$@"')
    result = _run("test", f"{bin_dir}:/usr/bin:/bin")
    assert result.returncode == 1
    assert "import pytest" in result.stderr and "import ocpp_gateway._core" in result.stderr
    assert "pip install -e" in result.stderr
    assert result.stdout == ""
