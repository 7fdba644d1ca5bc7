"""Observer and controller backends against real peers: the charge point's calls copied, only
the primary's answers reaching the charge point, a controller's commands with their own answers,
refusals that never reach the charge point."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import ocpp.exceptions
import pytest
from websockets.asyncio.client import connect

from interop.conftest import fixture_responder, request
from kit import poll
from ocpp_gateway.admin import describe

from .conftest import WAIT, Fleet, csms_server, gateway_with

V16 = "ocpp1.6"


def echo(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """DataTransfer answered with its own data, so an answer names its asker."""
    if action == "DataTransfer":
        return {"status": "Accepted", "data": kwargs.get("data", "")}
    return fixture_responder(version, action, kwargs)


def rejecting(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A second backend whose answers differ from the primary's."""
    if action == "BootNotification":
        return {"status": "Rejected", "currentTime": "2026-01-01T00:00:00Z", "interval": 5}
    if action == "Authorize":
        return {"idTagInfo": {"status": "Invalid"}}
    return fixture_responder(version, action, kwargs)


def answer(call: list[Any]) -> str:
    """A charge point's answer to a DataTransfer CALL: its data back."""
    return json.dumps([3, call[1], {"status": "Accepted", "data": call[3]["data"]}])


def actions(peer: Any) -> list[str]:
    return [action for action, _ in peer.handled]


async def test_observer_and_controller_see_the_calls_only_the_primary_answers() -> None:
    async with (
        csms_server() as primary,
        csms_server(rejecting) as controller,
        csms_server(rejecting) as observer,
    ):
        backends: dict[str, dict[str, Any]] = {
            "ems": {"role": "controller", "url": controller.url, "commands": ["TriggerMessage"]},
            "reporting": {"role": "observer", "url": observer.url},
        }
        async with gateway_with(primary.url, backends) as gateway:
            fleet = Fleet(gateway)
            try:
                cp = await fleet.connect("CP-1", V16)
                boot = await cp.call(
                    V16,
                    "BootNotification",
                    {"chargePointVendor": "V", "chargePointModel": "M"},
                )
                assert boot.status == "Accepted"  # the primary's, not the others' Rejected
                auth = await cp.call(V16, "Authorize", {"idTag": "TAG-1"})
                assert auth.id_tag_info["status"] == "Blocked"  # the primary's (fixture)
                for csms in (primary, controller, observer):
                    peer = await csms.peer("CP-1")

                    def both_copied(p: Any = peer) -> bool:
                        return len(p.handled) == 2

                    await poll(both_copied, "both calls copied")
                    assert actions(peer) == ["BootNotification", "Authorize"]
                # Only the primary's answers reached the charge point.
                assert len(cp.recorder.received) == 2
            finally:
                await fleet.close()


async def test_controller_command_and_refusals() -> None:
    async with (
        csms_server() as primary,
        csms_server() as controller,
        csms_server() as observer,
    ):
        backends: dict[str, dict[str, Any]] = {
            "ems": {
                "role": "controller",
                "url": controller.url,
                "commands": ["TriggerMessage", "DataTransfer"],
            },
            "reporting": {"role": "observer", "url": observer.url},
        }
        async with gateway_with(primary.url, backends) as gateway:
            fleet = Fleet(gateway)
            try:
                cp = await fleet.connect("CP-2", V16, responder=echo)
                await cp.call(V16, "Heartbeat", {})
                ems = await controller.peer("CP-2")
                answer = await ems.call(V16, "TriggerMessage", {"requestedMessage": "Heartbeat"})
                assert answer.status == "Accepted"
                assert "TriggerMessage" in actions(cp)
                # Not among its commands: refused, never reaching the charge point.
                with pytest.raises(ocpp.exceptions.SecurityError):
                    await ems.call(V16, "Reset", {"type": "Soft"})
                # An observer commands nothing.
                reporting = await observer.peer("CP-2")
                with pytest.raises(ocpp.exceptions.SecurityError):
                    await reporting.call(V16, "TriggerMessage", {"requestedMessage": "Heartbeat"})
                assert "Reset" not in actions(cp)
                assert actions(cp).count("TriggerMessage") == 1
                sample = gateway.runtime.metrics.registry.get_sample_value
                counts = {
                    (name, role, outcome): sample(
                        "ocpp_gateway_backend_commands_total",
                        {"backend": name, "role": role, "outcome": outcome},
                    )
                    for name, role in (("ems", "controller"), ("reporting", "observer"))
                    for outcome in ("allowed", "refused")
                }
                assert counts == {
                    ("ems", "controller", "allowed"): 1.0,
                    ("ems", "controller", "refused"): 1.0,
                    ("reporting", "observer", "allowed"): 0.0,
                    ("reporting", "observer", "refused"): 1.0,
                }
                # The admin API's view of the charge point lists its second backends.
                listed = describe(gateway.runtime, gateway.registry.live["CP-2"])["backends"]
                assert [(b["name"], b["role"], b["state"]) for b in listed] == [
                    ("ems", "controller", "up"),
                    ("reporting", "observer", "up"),
                ]
            finally:
                await fleet.close()


async def test_primary_and_controller_same_unique_id_at_once() -> None:
    """Both send a DataTransfer with UniqueId "same-1" at once; each gets its own answer."""
    async with csms_server(echo) as primary, csms_server(echo) as controller:
        backends: dict[str, dict[str, Any]] = {
            "ems": {"role": "controller", "url": controller.url, "commands": ["DataTransfer"]},
        }
        async with gateway_with(primary.url, backends) as gateway:
            fleet = Fleet(gateway)
            try:
                cp = await fleet.connect("CP-3", V16, responder=echo)
                await cp.call(V16, "Heartbeat", {})
                csms, ems = await primary.peer("CP-3"), await controller.peer("CP-3")

                def transfer(data: str) -> Any:
                    return request(V16, "DataTransfer", {"vendorId": "org.example", "data": data})

                from_csms, from_ems = await asyncio.wait_for(
                    asyncio.gather(
                        csms.charge_point.call(
                            transfer("for-primary"), suppress=False, unique_id="same-1"
                        ),
                        ems.charge_point.call(
                            transfer("for-controller"), suppress=False, unique_id="same-1"
                        ),
                    ),
                    WAIT,
                )
                assert from_csms.data == "for-primary"
                assert from_ems.data == "for-controller"
                # Each backend saw exactly its own answer, with its own UniqueId.
                for peer, data in ((csms, "for-primary"), (ems, "for-controller")):
                    answers = [m for m in peer.recorder.received if m.startswith("[3")]
                    assert len(answers) == 1
                    assert '"same-1"' in answers[0] and data in answers[0]
                # The charge point saw two distinct UniqueIds.
                calls = [m for m in cp.recorder.received if '"DataTransfer"' in m]
                assert len(calls) == 2
                assert sum('"same-1"' in m for m in calls) == 1
                assert sum('"gw-' in m for m in calls) == 1
            finally:
                await fleet.close()


async def test_selection_and_losing_the_primary_with_second_backends() -> None:
    """A second backend limited to some charge points serves only those; losing the primary
    still closes the charge point's socket with 1013, whatever the second backends do."""
    async with csms_server() as primary, csms_server() as site7, csms_server() as everyone:
        backends: dict[str, dict[str, Any]] = {
            "site7": {"role": "observer", "url": site7.url, "charge_points": ["site7-*"]},
            "all": {"role": "observer", "url": everyone.url},
        }
        async with gateway_with(primary.url, backends) as gateway:
            fleet = Fleet(gateway)
            try:
                inside = await fleet.connect("site7-01", V16)
                outside = await fleet.connect("site8-01", V16)
                await inside.call(V16, "Heartbeat", {})
                await outside.call(V16, "Heartbeat", {})
                await poll(lambda: set(everyone.peers) == {"site7-01", "site8-01"}, "all")
                await poll(lambda: "site7-01" in site7.peers, "the selected one")
                assert set(site7.peers) == {"site7-01"}
                # The primary drops site8-01's link: its socket closes with 1013.
                await primary.connections["site8-01"].close()
                connection = outside.recorder.connection
                await asyncio.wait_for(connection.wait_closed(), WAIT)
                assert connection.close_code == 1013
                # The other charge point is untouched.
                await inside.call(V16, "Heartbeat", {})
            finally:
                await fleet.close()


async def test_one_call_in_flight_to_the_charge_point_primary_included() -> None:
    """With a controller, the primary's CALL waits for the controller's (and the reverse):
    the charge point never has two CALLs of the CSMS side in flight (OCPP-J §4.1.1)."""
    async with csms_server(echo) as primary, csms_server(echo) as controller:
        backends: dict[str, dict[str, Any]] = {
            "ems": {"role": "controller", "url": controller.url, "commands": ["DataTransfer"]},
        }
        async with gateway_with(primary.url, backends) as gateway:
            charger = await asyncio.wait_for(
                connect(f"{gateway.url}/ocpp/RAW-1", subprotocols=[V16]),  # type: ignore[list-item]
                WAIT,
            )
            try:
                await charger.send('[2, "boot", "Heartbeat", {}]')
                assert json.loads(await asyncio.wait_for(charger.recv(), WAIT))[:2] == [3, "boot"]
                csms, ems = await primary.peer("RAW-1"), await controller.peer("RAW-1")

                def transfer(data: str) -> Any:
                    return request(V16, "DataTransfer", {"vendorId": "org.example", "data": data})

                from_ems = asyncio.ensure_future(
                    ems.charge_point.call(transfer("ems"), suppress=False)
                )
                first = json.loads(await asyncio.wait_for(charger.recv(), WAIT))
                assert first[0] == 2 and first[1].startswith("gw-")
                from_csms = asyncio.ensure_future(
                    csms.charge_point.call(transfer("csms"), suppress=False)
                )
                gate = gateway.registry.live["RAW-1"].gate
                assert gate is not None
                await poll(lambda: len(gate.queue) == 1, "the primary's call held")
                await charger.send(answer(first))
                second = json.loads(await asyncio.wait_for(charger.recv(), WAIT))
                assert second[0] == 2 and second[3]["data"] == "csms"
                await charger.send(answer(second))
                assert (await asyncio.wait_for(from_ems, WAIT)).data == "ems"
                assert (await asyncio.wait_for(from_csms, WAIT)).data == "csms"
                # And the reverse: a controller's call waits for the primary's.
                from_csms = asyncio.ensure_future(
                    csms.charge_point.call(transfer("csms-2"), suppress=False)
                )
                third = json.loads(await asyncio.wait_for(charger.recv(), WAIT))
                assert third[3]["data"] == "csms-2"
                from_ems = asyncio.ensure_future(
                    ems.charge_point.call(transfer("ems-2"), suppress=False)
                )
                await poll(lambda: len(gate.queue) == 1, "the controller's call waits")
                await charger.send(answer(third))
                fourth = json.loads(await asyncio.wait_for(charger.recv(), WAIT))
                assert fourth[3]["data"] == "ems-2"
                await charger.send(answer(fourth))
                assert (await asyncio.wait_for(from_csms, WAIT)).data == "csms-2"
                assert (await asyncio.wait_for(from_ems, WAIT)).data == "ems-2"
            finally:
                await charger.close()
