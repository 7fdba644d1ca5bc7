"""pyproject.toml: every requirement has a floor that scripts/floors.py turns into a pin, the
lint and type-check tools are pinned exactly, and the floors are the ones the code needs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def floors(*extras: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "floors.py"), *extras],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    pins = {}
    for line in out.splitlines():
        name, _, version = line.split(";")[0].partition("==")
        pins[name.strip()] = version.strip()
    return pins


def test_every_dependency_and_test_requirement_gets_a_floor() -> None:
    pins = floors("test")
    assert len(pins) == len(PROJECT["dependencies"]) + len(PROJECT["optional-dependencies"]["test"])
    assert all(version[0].isdigit() for version in pins.values()), pins


def test_floors_cover_what_the_code_and_tests_use() -> None:
    pins = floors("test")
    release = {name: tuple(int(p) for p in v.split(".")) for name, v in pins.items()}
    # decode_text=False (3.14.0); the request-head deadline against slowloris peers (3.14.4).
    assert release["aiohttp"] >= (3, 14, 4)
    assert release["websockets"] >= (15, 0)  # asyncio connections' close_code
    assert release["pytest-asyncio"] >= (1, 4)  # pytest_asyncio_loop_factories
    assert release["pytest"] >= (8, 4)  # what pytest-asyncio 1.4 requires
    assert release["jsonschema"] >= (4, 23)  # what ocpp 2.1.0 requires


def test_lint_tools_are_pinned_exactly() -> None:
    lint = PROJECT["optional-dependencies"]["lint"]
    tools = {"ruff", "mypy", "types-PyYAML", "types-jsonschema"}  # stubs decide mypy's answer too
    assert {requirement.split("==")[0] for requirement in lint} == tools
    assert all("==" in requirement for requirement in lint), lint


def test_verify_reports_each_dependency_off_its_floor() -> None:
    # The ordinary run has current releases (refused); scripts/test-floors has the floors.
    def release(version: str) -> tuple[int, ...]:
        numbers = [int(part) for part in version.split(".")]
        while numbers and numbers[-1] == 0:
            numbers.pop()
        return tuple(numbers)

    off = sorted(
        name
        for name, version in floors("test").items()
        if release(metadata.version(name)) != release(version)
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "floors.py"), "--verify", "test"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    reported = sorted(
        line.split(":")[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("error:")
    )
    assert reported == off
    assert result.returncode == (1 if off else 0)
