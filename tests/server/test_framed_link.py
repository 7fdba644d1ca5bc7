"""The relay's seam to a `FramedLink` (the broker links): each frame comes with the Session's facts
(message type, UniqueId, action, whether the gateway answered the backend itself), and the link's
`end_reason` decides how the charge point socket closes."""

from __future__ import annotations

import asyncio

import aiohttp

from kit import WAIT, poll
from ocpp_gateway.transports import FramedLink
from ocpp_gateway.transports.base import LinkEnd

from ._support import GatewayFactory, QueueLink, QueueTransport, WakingQueueLink

Facts = tuple[bytes, int, str, str, bool]


class FramedQueueLink(WakingQueueLink):
    """A `WakingQueueLink` that is also a `FramedLink`: it records the facts of every frame."""

    def __init__(self, charge_point_id: str, version: str) -> None:
        super().__init__(charge_point_id, version)
        self.facts: asyncio.Queue[Facts] = asyncio.Queue()
        self.end_reason: LinkEnd = ""

    async def send_frame(
        self, frame: bytes, message_type: int, unique_id: str, action: str, from_gateway: bool
    ) -> None:
        await self.send(frame)
        self.facts.put_nowait((frame, message_type, unique_id, action, from_gateway))

    async def next_facts(self) -> Facts:
        return await asyncio.wait_for(self.facts.get(), WAIT)

    def end(self, reason: LinkEnd) -> None:
        """The backend side ends the link (the broker went away, or the identity moved)."""
        self.end_reason = reason
        self.closed = True
        self.woken()


class FramedTransport(QueueTransport):
    async def open(self, charge_point_id: str, versions: tuple[str, ...]) -> QueueLink:
        link = self.links[charge_point_id] = FramedQueueLink(charge_point_id, versions[0])
        self.opened.put_nowait(link)
        return link


async def _connect(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession, version: str = "ocpp1.6"
) -> tuple[FramedQueueLink, aiohttp.ClientWebSocketResponse]:
    backend = FramedTransport()
    gateway = await gateway_factory(backends={"default": backend})
    ws = await client.ws_connect(f"{gateway.url}/ocpp/FR1", protocols=(version,))
    link = await backend.next_link()
    assert isinstance(link, FramedQueueLink) and isinstance(link, FramedLink)
    return link, ws


async def test_charge_point_frames_come_with_the_sessions_facts(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    link, ws = await _connect(gateway_factory, client)
    await ws.send_str('[2,"h1","Heartbeat",{}]')
    assert await link.next_facts() == (b'[2,"h1","Heartbeat",{}]', 2, "h1", "Heartbeat", False)
    # The charge point's answer to a backend CALL: the action is the call's.
    link.incoming.put_nowait(b'[2,"c1","ClearCache",{}]')
    assert (await ws.receive()).data == '[2,"c1","ClearCache",{}]'
    await ws.send_str('[3,"c1",{"status":"Accepted"}]')
    facts = await link.next_facts()
    assert facts == (b'[3,"c1",{"status":"Accepted"}]', 3, "c1", "ClearCache", False)
    # An invalid answer: the Session's CALLERROR stands in for it; still the charge point's.
    link.incoming.put_nowait(b'[2,"c2","ClearCache",{}]')
    assert (await ws.receive()).data == '[2,"c2","ClearCache",{}]'
    await ws.send_str('[3,"c2",{"status":"Maybe"}]')
    frame, message_type, unique_id, action, from_gateway = await link.next_facts()
    assert (message_type, unique_id, action, from_gateway) == (4, "c2", "ClearCache", False)
    assert frame.startswith(b'[4,"c2","PropertyConstraintViolation"')
    await ws.close()


async def test_a_backend_call_refused_by_validation_is_answered_by_the_gateway(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    link, ws = await _connect(gateway_factory, client)
    link.incoming.put_nowait(b'[2,"r1","Reset",{"type":"Sideways"}]')
    frame, message_type, unique_id, action, from_gateway = await link.next_facts()
    assert (message_type, unique_id, action, from_gateway) == (4, "r1", "Reset", True)
    assert frame.startswith(b'[4,"r1","PropertyConstraintViolation"')
    # Nothing reached the charge point: the next frame it gets is the next command.
    link.incoming.put_nowait(b'[2,"r2","Reset",{"type":"Soft"}]')
    assert (await ws.receive()).data == '[2,"r2","Reset",{"type":"Soft"}]'
    await ws.close()


async def test_a_link_that_moved_closes_the_charge_point_as_a_takeover(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    link, ws = await _connect(gateway_factory, client)
    link.end("moved")
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1008
    assert msg.extra == "connected elsewhere"


async def test_a_lost_link_closes_the_charge_point_with_try_again(
    gateway_factory: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    link, ws = await _connect(gateway_factory, client)
    link.end("lost")
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1013
    await poll(lambda: ws.closed, "the charge point socket closed")
