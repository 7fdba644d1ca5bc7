"""Fixtures of the core tests: one compiled SchemaSet per version, shared by the whole run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ocpp_gateway import _core

from . import _support as s

SessionFactory = Callable[..., _core.Session]


@pytest.fixture(scope="session")
def schema_sets() -> dict[str, _core.SchemaSet]:
    """The official schemas of every version, compiled once."""
    return {v: _core.SchemaSet(v, s.schema_dir(v)) for v in s.VERSIONS}  # type: ignore[arg-type]


@pytest.fixture
def new_session(schema_sets: dict[str, _core.SchemaSet]) -> SessionFactory:
    """Build a fresh Session of a version over the shared schemas."""

    def make(
        version: str, policy: _core.Policy | None = None, call_timeout: float = 60.0
    ) -> _core.Session:
        return _core.Session(
            version,  # type: ignore[arg-type]
            schemas=schema_sets[version],
            policy=policy,
            call_timeout=call_timeout,
        )

    return make
