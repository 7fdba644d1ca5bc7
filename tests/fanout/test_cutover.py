"""Cutover under traffic: a candidate made the primary through the admin API and back, with
transacting 1.6 charge points whose sockets stay open; nothing lost, nothing answered twice,
and each backend receives its own transaction ids, before and after each switch."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
from websockets.protocol import State

from interop.conftest import LibraryCsms, Peer, fixture_responder
from kit import poll

from .conftest import WAIT, Fleet, csms_server, gateway_with

V16 = "ocpp1.6"
CHARGE_POINTS = 10
PACE = 0.05  # seconds between two calls of one charge point
STAMP = "2026-01-01T00:00:00Z"
TOKEN = "cutover-test-token-0123456789"


def numbering(start: int) -> tuple[Any, list[int]]:
    """A CSMS responder giving transaction ids from `start`, and the list of those it gave."""
    ids = itertools.count(start)
    given: list[int] = []

    def responder(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        if action == "StartTransaction":
            given.append(next(ids))
            return {"idTagInfo": {"status": "Accepted"}, "transactionId": given[-1]}
        if action == "StopTransaction":
            return {}
        return fixture_responder(version, action, kwargs)

    return responder, given


class Traffic:
    def __init__(self) -> None:
        self.sent = 0
        self.acked = 0
        self.errors = 0
        self.stop = asyncio.Event()

    async def transact(self, cp: Peer) -> None:
        async def call(action: str, payload: dict[str, Any]) -> Any:
            self.sent += 1
            try:
                answer = await cp.call(V16, action, payload)
            except Exception:
                self.errors += 1
                raise
            self.acked += 1
            await asyncio.sleep(PACE)  # pacing the load
            return answer

        while not self.stop.is_set():
            started = await call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": STAMP},
            )
            tx = started.transaction_id
            sampled = [{"timestamp": STAMP, "sampledValue": [{"value": "1"}]}]
            await call(
                "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": sampled}
            )
            await call("StopTransaction", {"transactionId": tx, "meterStop": 2, "timestamp": STAMP})


def used_ids(csms: LibraryCsms, action: str) -> set[int]:
    return {
        kw["transaction_id"]
        for peer in csms.peers.values()
        for a, kw in peer.handled
        if a == action
    }


async def test_cutover_and_back_under_traffic(tmp_path: Any) -> None:
    primary_responder, primary_ids = numbering(100)
    candidate_responder, candidate_ids = numbering(50_000)
    async with (
        csms_server(primary_responder) as primary,
        csms_server(candidate_responder) as candidate,
    ):
        backends = {
            "next": {
                "role": "candidate",
                "url": candidate.url,
                "id_map": str(tmp_path / "next.sqlite"),
            }
        }
        extra = {"admin.port": 0, "admin.token": TOKEN, "call_timeout": 10.0}
        async with gateway_with(primary.url, backends, **extra) as gateway:
            fleet = Fleet(gateway)
            traffic = Traffic()
            headers = {"Authorization": f"Bearer {TOKEN}"}

            async def cut_over(name: str) -> None:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(
                        f"{gateway.admin_url}/backends/primary",
                        json={"backend": name},
                        headers=headers,
                    ) as response,
                ):
                    assert response.status == 200, await response.text()

            def primaries() -> set[str]:
                return {conn.primary for conn in gateway.registry.live.values()}

            def journaled(csms: LibraryCsms) -> int:
                return sum(len(peer.handled) for peer in csms.peers.values())

            try:
                ids = [f"CUT-{n:02d}" for n in range(CHARGE_POINTS)]
                cps = [await fleet.connect(cp_id, V16) for cp_id in ids]
                loops = [asyncio.ensure_future(traffic.transact(cp)) for cp in cps]
                await poll(lambda: len(primary_ids) >= CHARGE_POINTS, "transactions begin")
                await cut_over("next")
                await poll(lambda: primaries() == {"next"}, "every charge point cut over")
                before = len(candidate_ids)
                await poll(lambda: len(candidate_ids) > before + CHARGE_POINTS, "on the new")
                await cut_over("upstream")  # and back
                await poll(lambda: primaries() == {"upstream"}, "every charge point back")
                before = len(primary_ids)
                await poll(lambda: len(primary_ids) > before + CHARGE_POINTS, "on the old")
                # A wrong name is refused.
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(
                        f"{gateway.admin_url}/backends/primary",
                        json={"backend": "nope"},
                        headers=headers,
                    ) as response,
                ):
                    assert response.status == 409
                traffic.stop.set()
                await asyncio.wait_for(asyncio.gather(*loops), WAIT)
                # Nothing lost, nothing answered twice: every call answered once, and each
                # backend (as primary or as candidate) received every call.
                assert traffic.errors == 0
                assert traffic.sent == traffic.acked
                for cp in cps:
                    answers = [m for m in cp.recorder.received if m.startswith("[3")]
                    assert len(answers) == len([m for m in cp.recorder.sent if m.startswith("[2")])
                await poll(lambda: journaled(candidate) == traffic.sent, "the candidate has all")
                assert journaled(primary) == traffic.sent
                unmatched = gateway.runtime.metrics.registry.get_sample_value
                for direction in ("cp_to_csms", "csms_to_cp"):
                    labels = {"direction": direction}
                    assert not unmatched("ocpp_gateway_unmatched_results_total", labels)
                # Each backend only ever saw its own transaction ids.
                for csms, given in ((primary, primary_ids), (candidate, candidate_ids)):
                    for action in ("MeterValues", "StopTransaction"):
                        assert used_ids(csms, action) <= set(given), action
                # The charge points never noticed.
                assert all(cp.recorder.connection.state is State.OPEN for cp in cps)
                assert len(gateway.registry.live) == CHARGE_POINTS
            finally:
                traffic.stop.set()
                await fleet.close()
