"""pytest wiring of the micro-benchmarks: collect bench_*.py, need pytest-benchmark, print ratios.

Run: `pytest benches -p benchmark --benchmark-only` (the repository's pytest config disables the
plugin and collects only tests/, so the ordinary test run never times anything).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# median seconds per (scenario, implementation), filled by bench_core.py while it runs
CORE_RESULTS: dict[tuple[str, str], float] = {}


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("benchmark"):
        raise pytest.UsageError(
            "benches need pytest-benchmark: run `pytest benches -p benchmark --benchmark-only`"
        )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect benches/bench_*.py as test modules (they are not named test_*.py on purpose)."""
    named = file_path.suffix == ".py" and file_path.name.startswith("bench_")
    # A file named on the command line is collected by pytest itself: don't collect it twice.
    if named and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def record_core_result(benchmark: Any) -> Any:
    """Call with (scenario, implementation) after `benchmark(...)` to keep its median."""

    def record(scenario: str, implementation: str) -> None:
        CORE_RESULTS[(scenario, implementation)] = float(benchmark.stats.stats.median)

    return record


def core_table() -> list[str]:
    """The core micro-benchmark results as a Markdown table with the two ratios."""
    rows = [
        "| scenario | orjson.loads (µs) | ocpp_gateway._core (µs) | ocpp library (µs) "
        "| core / orjson | ocpp lib / core |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in dict.fromkeys(s for s, _ in CORE_RESULTS):
        floor = CORE_RESULTS.get((scenario, "orjson"))
        core = CORE_RESULTS.get((scenario, "core"))
        lib = CORE_RESULTS.get((scenario, "ocpp_lib"))

        def us(v: float | None) -> str:
            return "-" if v is None else f"{v * 1e6:.2f}"

        def ratio(a: float | None, b: float | None) -> str:
            return "-" if a is None or b is None else f"{a / b:.2f}x"

        rows.append(
            f"| {scenario} | {us(floor)} | {us(core)} | {us(lib)} "
            f"| {ratio(core, floor)} | {ratio(lib, core)} |"
        )
    return rows


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CORE_RESULTS:
        terminalreporter.section("core micro-benchmarks: medians and ratios")
        for line in core_table():
            terminalreporter.write_line(line)
