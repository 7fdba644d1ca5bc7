"""Version negotiation through the gateway with real peers: a station offering several OCPP
versions reaches a CSMS that speaks only one of them (OCPP 2.x Part 4: a station should offer
`ocpp2.1, ocpp2.0.1`), and both validate in the version the CSMS chose."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from kit import WAIT

from .conftest import (
    LibraryCsms,
    _make_peer,
    _serving,
    fixture_responder,
    fixtures,
    request,
    running_gateway,
)


@pytest.mark.parametrize(
    ("station_offers", "csms_speaks"),
    [
        (("ocpp2.1", "ocpp2.0.1"), "ocpp2.0.1"),  # prefers 2.1, the CSMS is a 2.0.1 one
        (("ocpp2.0.1", "ocpp2.1"), "ocpp2.1"),  # the reverse
        (("ocpp2.0.1", "ocpp1.6"), "ocpp1.6"),
    ],
)
async def test_the_csms_choice_among_the_offered_versions_wins(
    station_offers: tuple[str, ...], csms_speaks: str
) -> None:
    csms = LibraryCsms()
    async with _serving(csms.handler, subprotocols=(csms_speaks,)) as url:
        csms.url = url
        async with running_gateway(url) as gateway:
            connection = await asyncio.wait_for(
                connect(
                    f"{gateway.url}/ocpp/MULTI1",
                    subprotocols=list(station_offers),  # type: ignore[arg-type]
                ),
                WAIT,
            )
            try:
                assert connection.subprotocol == csms_speaks
                station = _make_peer(csms_speaks, "MULTI1", connection, fixture_responder)
                server = await csms.peer("MULTI1")
                payload = fixtures(csms_speaks)["BootNotification"]["request"]
                answer = await asyncio.wait_for(
                    station.charge_point.call(request(csms_speaks, "BootNotification", payload)),
                    WAIT,
                )
                assert answer is not None
                assert [a for a, _ in server.handled] == ["BootNotification"]
                assert server.recorder.received == station.recorder.sent
            finally:
                await connection.close()


async def test_a_csms_speaking_none_of_the_offered_versions_refuses_the_handshake() -> None:
    csms = LibraryCsms()
    async with (
        _serving(csms.handler, subprotocols=("ocpp1.6",)) as url,
        running_gateway(url) as gateway,
    ):
        with pytest.raises(InvalidStatus) as refused:
            await asyncio.wait_for(
                connect(
                    f"{gateway.url}/ocpp/MULTI2",
                    subprotocols=["ocpp2.1", "ocpp2.0.1"],  # type: ignore[list-item]
                ),
                WAIT,
            )
        assert refused.value.response.status_code == 503
