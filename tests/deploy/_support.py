"""Helpers of the deploy tests: the Prometheus HTTP API, Grafana's variable substitution, the
simulated fleet's profile, and the wait bound of tests that run Prometheus, a NATS cluster and
gateway processes together."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from kit import WAIT, poll
from ocpp_gateway.simulate.profile import Profile

#: Each wait of the deploy tests: Prometheus evaluating rules, a NATS cluster electing its
#: leaders and gateway processes share the machine, so they get twice the kit's bound.
DEPLOY_WAIT = 2 * WAIT

# A fleet busy enough for a rate over a few seconds; one in five charge points sometimes sends
# an invalid frame, so the rejection panels have data too.
PROFILE = Profile(
    heartbeat_interval=0.5,
    status_interval=1.0,
    transaction_interval=1.0,
    transaction_duration=2.0,
    meter_interval=0.5,
    connectors=2,
    misbehave_fraction=0.2,
    misbehave_probability=0.1,
    boot_retry_interval=0.5,
)


def grafana_rate_interval(scrape_seconds: float, interval_seconds: float) -> str:
    """`$__rate_interval` as Grafana computes it: max($__interval + scrape, 4 * scrape)."""
    return f"{max(interval_seconds + scrape_seconds, 4 * scrape_seconds):g}s"


def grafana_regex_value(values: list[str]) -> str:
    """A multi-value variable in a Prometheus regex, as Grafana formats it: (a|b), with regex
    metacharacters escaped by a double backslash (the regex sits in a PromQL string)."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace `$name` and `${name}` (longest names first) and check that none is left."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


@dataclass
class Prometheus:
    """A Prometheus server's HTTP API."""

    url: str
    http: aiohttp.ClientSession

    async def api(self, path: str, **params: str) -> Any:
        async with self.http.get(f"{self.url}/api/v1/{path}", params=params) as response:
            body = await response.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        data = await self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def poll(self, what: str, probe: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
        """Re-evaluate `probe` until `done` holds; Prometheus has no event to wait on."""
        last: list[Any] = [None]

        async def reached() -> tuple[Any] | None:
            last[0] = await probe()
            return (last[0],) if done(last[0]) else None

        try:
            (value,) = await poll(reached, what, DEPLOY_WAIT, every=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last: {last[0]}") from None
        return value


def values(result: list[dict[str, Any]]) -> list[float]:
    """The sample values of an instant query's result."""
    return [float(sample["value"][1]) for sample in result]
