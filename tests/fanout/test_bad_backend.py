"""A second backend that sends what it should not: every frame gets the specified answer or is
ignored, nothing reaches the charge point, and the charge point's connection stays."""

from __future__ import annotations

import asyncio
import json

from websockets.protocol import State

from interop.conftest import RawCsms, _serving
from kit import WAIT, poll

from .conftest import Fleet, csms_server, gateway_with

V16 = "ocpp1.6"


async def test_bad_frames_from_a_controller() -> None:
    raw = RawCsms()
    async with csms_server() as primary, _serving(raw.handler) as url:
        backends = {"ems": {"role": "controller", "url": url, "commands": ["TriggerMessage"]}}
        async with gateway_with(primary.url, backends) as gateway:
            fleet = Fleet(gateway)
            try:
                cp = await fleet.connect("BAD-1", V16)
                await cp.call(V16, "Heartbeat", {})
                cp_id, ems = await raw.next()
                assert cp_id == "BAD-1"
                copy = json.loads(await asyncio.wait_for(ems.recv(), WAIT))
                assert copy[0] == 2 and copy[2] == "Heartbeat"
                # Ignored: not JSON, not an array, no UniqueId to answer to, stray answers.
                for ignored in ("not json", "{}", "[2]", "[2, 5, 6, {}]", '[3, "x", {}]'):
                    await ems.send(ignored)
                cases = [
                    # (frame, expected error code)
                    ('[2, "a", 7, {}]', "FormationViolation"),
                    ('[2, "b", "TriggerMessage", []]', "TypeConstraintViolation"),
                    ('[2, "c", "Reset", {"type": "Soft"}]', "SecurityError"),
                    ('[2, "d", "TriggerMessage", {"requestedMessage": "Nope"}]', None),
                ]
                for frame, code in cases:
                    await ems.send(frame)
                    answer = json.loads(await asyncio.wait_for(ems.recv(), WAIT))
                    assert answer[0] == 4 and answer[1] == json.loads(frame)[1], answer
                    if code is not None:
                        assert answer[2] == code, answer
                    else:  # refused by the request schema: the validation's own code
                        assert answer[2] in ("PropertyConstraintViolation", "FormationViolation")
                # A good one still works after all that.
                await ems.send('[2, "e", "TriggerMessage", {"requestedMessage": "Heartbeat"}]')
                answer = json.loads(await asyncio.wait_for(ems.recv(), WAIT))
                assert answer[:2] == [3, "e"] and answer[2]["status"] == "Accepted"
                assert [a for a, _ in cp.handled] == ["TriggerMessage"]
                assert cp.recorder.connection.state is State.OPEN
                sample = gateway.runtime.metrics.registry.get_sample_value
                labels = {"backend": "ems", "role": "controller", "outcome": "refused"}
                await poll(
                    lambda: sample("ocpp_gateway_backend_commands_total", labels) == 2,
                    "two refusals counted (the Reset, the array payload)",
                )
            finally:
                await fleet.close()


async def test_a_second_backend_that_never_accepts() -> None:
    """A controller URL where nothing listens: the charge point is served all the same."""
    async with csms_server() as primary:
        backends = {
            "ems": {"role": "observer", "url": "ws://127.0.0.1:9/nothing", "queue_frames": 2}
        }
        async with gateway_with(primary.url, backends) as gateway:
            fleet = Fleet(gateway)
            try:
                cp = await fleet.connect("LONELY-1", V16)
                for _ in range(5):
                    await cp.call(V16, "Heartbeat", {})
                conn = gateway.registry.live["LONELY-1"]
                (side,) = conn.sides
                assert side.describe()["state"] in ("connecting", "down")
                assert side.describe()["queued"] == 2 and side.describe()["dropped"] == 3
            finally:
                await fleet.close()
