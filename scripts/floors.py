"""The lowest versions pyproject.toml allows, as a pip constraints file, and a check of them.

    python3 scripts/floors.py [EXTRA ...]           print `name==floor` for the dependencies
                                                    and the given extras
    python3 scripts/floors.py --verify [EXTRA ...]  exit 1 unless exactly those are installed

Every requirement must have a floor (`>=X` or `==X`): one without is reported as an error, since
nothing would prove the code works with its oldest allowed release.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*"
    r"(?P<spec>[^;]*?)\s*(?:;\s*(?P<marker>.+))?$"
)
FLOOR = re.compile(r"(?:>=|==)\s*([0-9][^,\s]*)")


def floors(extras: list[str]) -> list[tuple[str, str, str | None]]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    found: dict[str, tuple[str, str, str | None]] = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        floor = FLOOR.search(match.group("spec")) if match else None
        if match is None or floor is None:
            raise SystemExit(f"{PYPROJECT.name}: {requirement!r} has no floor (>=X or ==X)")
        name = match.group("name").lower().replace("_", "-")
        found.setdefault(name, (name, floor.group(1), match.group("marker")))
    return list(found.values())


def _release(version: str) -> tuple[int, ...] | str:
    """3.9 and 3.9.0 are the same release; anything not purely numeric compares as text."""
    parts = version.split(".")
    if not all(part.isdigit() for part in parts):
        return version
    numbers = [int(part) for part in parts]
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def main(argv: list[str]) -> int:
    verify = "--verify" in argv
    extras = [a for a in argv if a != "--verify"]
    rows = floors(extras)
    if not verify:
        for name, version, marker in rows:
            print(f"{name}=={version}" + (f"; {marker}" if marker else ""))
        return 0
    wrong = []
    for name, version, marker in rows:
        if marker and "win32" in marker and sys.platform == "win32":
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if _release(installed) != _release(version):
            wrong.append(f"{name}: floor {version}, installed {installed}")
    for line in wrong:
        print(f"error: {line}", file=sys.stderr)
    print(f"{len(rows) - len(wrong)} of {len(rows)} dependencies at their floor", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
