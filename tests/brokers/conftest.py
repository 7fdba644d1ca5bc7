"""Fixtures of the broker tests: a real broker server of each kind on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._support import BROKERS, Broker, broker_server


@pytest.fixture(scope="module")
def broker_durable() -> bool:
    """Whether `server` keeps every acknowledged entry across a kill (Redis fsyncs each write);
    a test module that kills the server overrides this fixture to return True."""
    return False


def _serve(kind: str, durable: bool) -> Iterator[tuple[str, Broker]]:
    running = broker_server(kind, durable)
    try:
        yield kind, running
    finally:
        running.close()


@pytest.fixture(params=BROKERS)
def server(request: pytest.FixtureRequest, broker_durable: bool) -> Iterator[tuple[str, Broker]]:
    """A fresh server of each broker kind per test: (kind, server)."""
    yield from _serve(request.param, broker_durable)


@pytest.fixture(scope="module", params=BROKERS)
def module_server(
    request: pytest.FixtureRequest, broker_durable: bool
) -> Iterator[tuple[str, Broker]]:
    """One server of each broker kind for a whole module: (kind, server)."""
    yield from _serve(request.param, broker_durable)
