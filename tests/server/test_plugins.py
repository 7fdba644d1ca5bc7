"""Routing plugins: the built-ins (block_commands, route_by_action), the example, the chain."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from ocpp_gateway.config import PluginsConfig
from ocpp_gateway.errors import PluginError
from ocpp_gateway.routing import CONTINUE, ConnectionInfo, MessageView, Reject, build_chain
from ocpp_gateway.routing.block_commands import BlockCommands
from ocpp_gateway.server import RunningGateway

from ._support import Csms, GatewayFactory, receive_frame, scrape

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plugins"


def test_no_plugins_means_no_chain() -> None:
    assert build_chain(PluginsConfig()) is None


def test_unknown_plugin_and_bad_options_are_errors() -> None:
    with pytest.raises(PluginError, match="unknown plugin"):
        build_chain(PluginsConfig(enabled=("nope",)))
    with pytest.raises(PluginError, match="rejected its options"):
        build_chain(
            PluginsConfig(enabled=("block_commands",), options={"block_commands": {"x": 1}})
        )


def test_message_view_parses_payload_lazily() -> None:
    info = ConnectionInfo("CP", "ocpp1.6", None)
    view = MessageView(info, "csms_to_cp", 2, "u", "Reset", b'[2,"u","Reset",{"type":"Hard"}]')
    assert view._payload is None
    assert view.payload == {"type": "Hard"}
    plugin = BlockCommands(actions=["Reset"], charge_points=["LAB-*"])
    assert plugin.on_call(view) is CONTINUE  # "CP" does not match LAB-*
    lab = MessageView(ConnectionInfo("LAB-1", "ocpp1.6", None), "csms_to_cp", 2, "u", "Reset", b"")
    assert isinstance(plugin.on_call(lab), Reject)


async def test_block_commands_answers_the_csms_and_spares_the_charge_point(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(
        upstream__url=csms.url,
        plugins__enabled=["block_commands"],
        plugins__options={"block_commands": {"actions": ["Reset"]}},
    )
    ws = await client.ws_connect(f"{gateway.url}/ocpp/BLK1", protocols=("ocpp1.6",))
    link = await csms.next_link()
    await link.send(b'[2,"r-1","Reset",{"type":"Hard"}]')
    assert json.loads(await link.next_frame()) == [
        4,
        "r-1",
        "SecurityError",
        "Blocked by gateway policy",
        {},
    ]
    # Other commands pass; the charge point's first frame is the allowed one.
    await link.send(b'[2,"r-2","ClearCache",{}]')
    assert json.loads(await receive_frame(ws)) == [2, "r-2", "ClearCache", {}]
    await ws.send_str('[3,"r-2",{"status":"Accepted"}]')
    assert json.loads(await link.next_frame()) == [3, "r-2", {"status": "Accepted"}]
    await ws.close()


async def test_route_by_action_sends_chosen_actions_to_another_transport(
    csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    gateway = await gateway_factory(
        upstream__url=csms.url,
        transports={"edge": {"type": "local"}},
        plugins__enabled=["route_by_action"],
        plugins__options={"route_by_action": {"routes": {"Authorize": "edge"}}},
    )
    ws = await client.ws_connect(f"{gateway.url}/ocpp/RBA1", protocols=("ocpp1.6",))
    link = await csms.next_link()
    await ws.send_str('[2,"a-1","Authorize",{"idTag":"T"}]')
    answer = json.loads(await receive_frame(ws))
    assert answer == [3, "a-1", {"idTagInfo": {"status": "Accepted"}}]
    await ws.send_str('[2,"h-1","Heartbeat",{}]')
    # The CSMS sees only the heartbeat: the Authorize went to the local transport.
    assert json.loads(await link.next_frame()) == [2, "h-1", "Heartbeat", {}]
    assert json.loads(await receive_frame(ws))[:2] == [3, "h-1"]
    await ws.close()


async def test_example_plugin_replies_locally_through_the_session(
    csms: Csms,
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    name = "vendor_data_transfer:VendorDataTransfer"
    gateway: RunningGateway = await gateway_factory(
        upstream__url=csms.url,
        plugins__enabled=[name],
        plugins__options={name: {"vendor_id": "com.example"}},
    )
    ws = await client.ws_connect(f"{gateway.url}/ocpp/EX1", protocols=("ocpp1.6",))
    link = await csms.next_link()
    await ws.send_str('[2,"d-1","DataTransfer",{"vendorId":"com.example","data":"x"}]')
    assert json.loads(await receive_frame(ws)) == [3, "d-1", {"status": "Accepted"}]
    await ws.send_str('[2,"d-2","DataTransfer",{"vendorId":"other"}]')
    assert json.loads(await link.next_frame())[:2] == [2, "d-2"]
    metrics = await scrape(client, gateway)
    # The local reply went through the session: the pending call was cleared and timed.
    duration = (
        'ocpp_gateway_call_duration_seconds_count{action="DataTransfer",direction="cp_to_csms"}'
    )
    assert metrics[duration] >= 1.0
    await ws.close()
    sys.modules.pop("vendor_data_transfer", None)


async def test_answers_to_a_secondary_backend_go_back_to_it(
    csms: Csms, other_csms: Csms, gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    """A call from a transport a plugin forwarded to is answered on that transport, also when
    the answer is replaced by a CALLERROR; the origin table never outlives its calls."""
    gateway = await gateway_factory(
        upstream__url=csms.url,
        call_timeout=30,
        transports={"billing": {"type": "websocket", "url": other_csms.url}},
        plugins__enabled=["route_by_action"],
        plugins__options={"route_by_action": {"routes": {"Authorize": "billing"}}},
    )
    other_csms.answers["Authorize"] = lambda _cp, _p: {"idTagInfo": {"status": "Accepted"}}
    ws = await client.ws_connect(f"{gateway.url}/ocpp/ORIG1", protocols=("ocpp1.6",))
    default = await csms.next_link()
    await ws.send_str('[2,"a-1","Authorize",{"idTag":"T"}]')  # opens the billing link
    billing = await other_csms.next_link()
    assert json.loads(await billing.next_frame())[:2] == [2, "a-1"]
    assert json.loads(await receive_frame(ws))[:2] == [3, "a-1"]
    conn = next(iter(gateway.registry.connections))

    # The same UniqueId from both backends: the second one is refused by the session.
    await billing.send(b'[2,"dup","ClearCache",{}]')
    assert json.loads(await receive_frame(ws)) == [2, "dup", "ClearCache", {}]
    await default.send(b'[2,"dup","ClearCache",{}]')
    assert json.loads(await default.next_frame())[:2] == [4, "dup"]
    await ws.send_str('[3,"dup",{"status":"Accepted"}]')
    assert json.loads(await billing.next_frame()) == [3, "dup", {"status": "Accepted"}]

    # And the other way round: the default CSMS's pending call keeps its UniqueId.
    await default.send(b'[2,"dup2","ClearCache",{}]')
    assert json.loads(await receive_frame(ws)) == [2, "dup2", "ClearCache", {}]
    await billing.send(b'[2,"dup2","ClearCache",{}]')
    assert json.loads(await billing.next_frame())[:3] == [4, "dup2", "FormationViolation"]
    await ws.send_str('[3,"dup2",{"status":"Rejected"}]')
    assert json.loads(await default.next_frame()) == [3, "dup2", {"status": "Rejected"}]

    # An invalid answer is replaced by a CALLERROR, sent to the backend that asked.
    await billing.send(b'[2,"bad","ClearCache",{}]')
    await receive_frame(ws)
    await ws.send_str('[3,"bad",{"status":"Maybe"}]')
    assert json.loads(await billing.next_frame())[:3] == [4, "bad", "PropertyConstraintViolation"]
    assert conn.call_origin == {}

    # A call never answered is forgotten by the timer, and so is its origin.
    await billing.send(b'[2,"lost","ClearCache",{}]')
    await receive_frame(ws)
    assert conn.call_origin == {"lost": "billing"}
    gateway.tick(time.monotonic() + 60)
    assert conn.call_origin == {}
    assert default.frames.empty()  # nothing meant for billing reached the default CSMS
    await ws.close()
