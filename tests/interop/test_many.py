"""Many `ocpp` library charge points interleaved through one gateway: every answer reaches the
charge point (or the CSMS connection) that asked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .conftest import Interop, LibraryCsms, _serving, fixture_responder, running_gateway

N = 20
CALLS = 5


def echo(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Answer DataTransfer with the request's data, so each answer names its asker."""
    if action == "DataTransfer":
        return {"status": "Accepted", "data": kwargs.get("data", "")}
    return fixture_responder(version, action, kwargs)


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
async def test_interleaved_calls_each_answer_reaches_its_caller(version: str) -> None:
    csms = LibraryCsms(responder=echo)
    async with _serving(csms.handler) as url:
        csms.url = url
        async with running_gateway(url) as gateway:
            setup = Interop(csms, gateway)
            try:
                ids = [f"MANY-{i:02d}" for i in range(N)]
                clients = await asyncio.gather(
                    *(setup.connect(cp_id, version, responder=echo) for cp_id in ids)
                )

                async def chatter(cp_id: str, client: Any) -> list[str]:
                    answers = []
                    for n in range(CALLS):
                        response = await client.call(
                            version,
                            "DataTransfer",
                            {"vendorId": "org.example", "data": f"{cp_id}/{n}"},
                        )
                        answers.append(response.data)
                    return answers

                results = await asyncio.gather(
                    *(chatter(cp_id, c) for cp_id, c in zip(ids, clients, strict=True))
                )
                for cp_id, answers in zip(ids, results, strict=True):
                    assert answers == [f"{cp_id}/{n}" for n in range(CALLS)]

                # And from the CSMS to every charge point at once.
                servers = [await csms.peer(cp_id) for cp_id in ids]
                replies = await asyncio.gather(
                    *(
                        server.call(
                            version,
                            "DataTransfer",
                            {"vendorId": "org.example", "data": f"to {cp_id}"},
                        )
                        for cp_id, server in zip(ids, servers, strict=True)
                    )
                )
                assert [r.data for r in replies] == [f"to {cp_id}" for cp_id in ids]
                for client, server in zip(clients, servers, strict=True):
                    assert server.recorder.received == client.recorder.sent
                    assert client.recorder.received == server.recorder.sent
            finally:
                for peer in setup.clients:
                    await peer.recorder.connection.close()
                await asyncio.gather(*(p.task for p in setup.clients), return_exceptions=True)
