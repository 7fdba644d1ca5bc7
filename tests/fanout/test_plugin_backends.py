"""A plugin's decision on which second backends serve a charge point (`second_backends`): the
chain's rule by table, and the example plugin (by network) against library peers."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

from kit import poll
from ocpp_gateway._core import OcppVersionName
from ocpp_gateway.admin import describe
from ocpp_gateway.routing import CONTINUE, Chain, ConnectionInfo, Decision, MessageView

from .conftest import Fleet, csms_server, gateway_with

V16: OcppVersionName = "ocpp1.6"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"
EXAMPLE = "backends_by_network:BackendsByNetwork"
INFO = ConnectionInfo("CP-1", "ocpp1.6", "10.7.0.3")


class _Hooks:
    """The four required hooks, deciding nothing."""

    def on_connect(self, info: ConnectionInfo) -> Decision:
        return CONTINUE

    def on_call(self, message: MessageView) -> Decision:
        return CONTINUE

    def on_call_result(self, message: MessageView) -> Decision:
        return CONTINUE

    def on_disconnect(self, info: ConnectionInfo) -> None:
        return None


class Keeps(_Hooks):
    """Keeps the names it was given (None: no opinion)."""

    def __init__(self, keep: Collection[str] | None) -> None:
        self.keep = keep
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def second_backends(self, info: ConnectionInfo, names: Collection[str]) -> Any:
        self.asked.append((info.charge_point_id, tuple(names)))
        return self.keep


class Fails(_Hooks):
    def second_backends(self, info: ConnectionInfo, names: Collection[str]) -> Any:
        raise RuntimeError("broken plugin")


@pytest.fixture
def example_plugins() -> Iterator[type[Any]]:
    """The example plugin's class, importable as "module:Class" while the test runs."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        module = importlib.import_module("backends_by_network")
        yield module.BackendsByNetwork
    finally:
        sys.path.remove(str(EXAMPLES))
        sys.modules.pop("backends_by_network", None)


OFFERED = ("ems", "reporting", "next")


@pytest.mark.parametrize(
    ("plugins", "expected"),
    [
        ([], None),  # no chain member has the hook
        ([_Hooks()], None),
        ([Keeps(None)], None),  # no opinion
        ([Keeps(["ems"])], frozenset({"ems"})),
        ([Keeps([])], frozenset()),  # none of them
        # Never adds a backend the configuration did not offer.
        ([Keeps(["ems", "elsewhere"])], frozenset({"ems"})),
        # Each plugin narrows, in chain order.
        ([Keeps(["ems", "reporting"]), Keeps(["reporting", "next"])], frozenset({"reporting"})),
        ([Keeps(None), Keeps(["next"])], frozenset({"next"})),
        # A failing hook is logged and counts as no opinion.
        ([Fails(), Keeps(["ems"])], frozenset({"ems"})),
        ([Fails()], None),
    ],
)
def test_chain_second_backends(plugins: list[Any], expected: frozenset[str] | None) -> None:
    assert Chain(plugins).second_backends(INFO, OFFERED) == expected


def test_example_plugin_by_network(example_plugins: type[Any]) -> None:
    plugin = example_plugins({"ems": ["10.7.0.0/16"], "lab": ["192.168.0.0/24", "::1/128"]})
    names = ("ems", "lab", "reporting")
    at = {
        "10.7.0.3": ["ems", "reporting"],
        "10.8.0.3": ["reporting"],
        "::1": ["lab", "reporting"],
        None: ["reporting"],  # unknown address: none of the named ones
        "not an address": ["reporting"],
    }
    for remote, kept in at.items():
        assert plugin.second_backends(ConnectionInfo("CP", V16, remote), names) == kept
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        example_plugins({"ems": ["10.7.0.0/33"]})


async def test_plugin_limits_second_backends_at_connect(example_plugins: type[Any]) -> None:
    """Behind the example plugin, an observer of another network does not serve a charge point
    on loopback; one of loopback's network does, and one the plugin does not name does too."""
    async with (
        csms_server() as primary,
        csms_server() as lab,
        csms_server() as local,
        csms_server() as everyone,
    ):
        backends = {
            "lab": {"role": "observer", "url": lab.url},
            "local": {"role": "observer", "url": local.url},
            "everyone": {"role": "observer", "url": everyone.url},
        }
        plugins = {
            "plugins.enabled": [EXAMPLE],
            "plugins.options": {
                EXAMPLE: {"networks": {"lab": ["10.0.0.0/8"], "local": ["127.0.0.0/8"]}}
            },
        }
        async with gateway_with(primary.url, backends, **plugins) as gateway:
            fleet = Fleet(gateway)
            try:
                cp = await fleet.connect("CP-P", V16)
                await cp.call(V16, "Heartbeat", {})
                listed = describe(gateway.runtime, gateway.registry.live["CP-P"])["backends"]
                assert sorted(b["name"] for b in listed) == ["everyone", "local"]
                # The two that serve it receive its calls; the other network's observer none.
                for served in (local, everyone):
                    peer = await served.peer("CP-P")

                    def copied(p: Any = peer) -> bool:
                        return [action for action, _ in p.handled] == ["Heartbeat"]

                    await poll(copied, "the heartbeat copied")
                assert lab.peers == {}
            finally:
                await fleet.close()
