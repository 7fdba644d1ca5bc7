"""A candidate backend: answers compared with the primary's and reported (metrics, admin API,
`ocpp-gateway candidate-report`), never reaching the charge point; 1.6 transaction ids mapped
to the candidate's own, across a restart of the gateway."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import aiohttp

from interop.conftest import LibraryCsms, Peer, fixture_responder
from kit import poll
from ocpp_gateway.fanout.report import main as report_main
from ocpp_gateway.fanout.store import read_report

from .conftest import Fleet, csms_server, gateway_with

V16 = "ocpp1.6"
STAMP = "2026-01-01T00:00:00Z"
TOKEN = "candidate-report-token-0123456789"


def numbering(start: int, bad_prefix: str | None) -> Any:
    """A CSMS giving transaction ids from `start` and, when `bad_prefix` is set, refusing the
    idTags that begin with it."""
    ids = itertools.count(start)

    def responder(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        tag = str(kwargs.get("id_tag", ""))
        status = "Invalid" if bad_prefix and tag.startswith(bad_prefix) else "Accepted"
        if action == "Authorize":
            return {"idTagInfo": {"status": status}}
        if action == "StartTransaction":
            return {"idTagInfo": {"status": status}, "transactionId": next(ids)}
        if action == "StopTransaction":
            return {}
        return fixture_responder(version, action, kwargs)

    return responder


def transaction_ids(csms: LibraryCsms, cp_id: str, action: str) -> list[int]:
    return [kw["transaction_id"] for a, kw in csms.peers[cp_id].handled if a == action]


async def meter_and_stop(cp: Peer, tx: int) -> None:
    sampled = [{"timestamp": STAMP, "sampledValue": [{"value": "5"}]}]
    await cp.call(
        V16, "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": sampled}
    )
    await cp.call(V16, "StopTransaction", {"transactionId": tx, "meterStop": 9, "timestamp": STAMP})


async def test_candidate_compared_reported_and_mapped_across_a_restart(tmp_path: Path) -> None:
    store = str(tmp_path / "next-csms.sqlite")
    async with (
        csms_server(numbering(100, None)) as primary,
        csms_server(numbering(9000, "BAD")) as candidate,
    ):
        backends = {"next-csms": {"role": "candidate", "url": candidate.url, "id_map": store}}
        extra = {"admin.port": 0, "admin.token": TOKEN}
        async with gateway_with(primary.url, backends, **extra) as gateway:
            fleet = Fleet(gateway)
            try:
                cp = await fleet.connect("CP-C", V16)
                answers = [
                    (await cp.call(V16, "Authorize", {"idTag": tag})).id_tag_info["status"]
                    for tag in ("GOOD-1", "BAD-1", "GOOD-2", "BAD-2")
                ]
                assert answers == ["Accepted"] * 4  # the primary's answers only
                started = await cp.call(
                    V16,
                    "StartTransaction",
                    {"connectorId": 1, "idTag": "GOOD-1", "meterStart": 0, "timestamp": STAMP},
                )
                assert started.transaction_id == 100
                await meter_and_stop(cp, 100)
                # A second transaction, stopped only after the gateway restarted.
                second = await cp.call(
                    V16,
                    "StartTransaction",
                    {"connectorId": 1, "idTag": "GOOD-2", "meterStart": 0, "timestamp": STAMP},
                )
                assert second.transaction_id == 101
                await poll(
                    lambda: transaction_ids(candidate, "CP-C", "StopTransaction") == [9000],
                    "the candidate's StopTransaction",
                )
                assert transaction_ids(candidate, "CP-C", "MeterValues") == [9000]
                assert transaction_ids(primary, "CP-C", "StopTransaction") == [100]
                sample = gateway.runtime.metrics.registry.get_sample_value

                def answers_total(action: str, outcome: str) -> float:
                    labels = {"backend": "next-csms", "action": action, "outcome": outcome}
                    return sample("ocpp_gateway_candidate_answers_total", labels) or 0.0

                await poll(lambda: answers_total("StartTransaction", "agree") == 2, "compared")
                assert answers_total("Authorize", "agree") == 2
                assert answers_total("Authorize", "disagree") == 2
                assert answers_total("MeterValues", "agree") == 1
                # The admin API's report.
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(
                        f"{gateway.admin_url}/candidates",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    ) as response,
                ):
                    assert response.status == 200
                    body = await response.json()
                report = body["candidates"]["next-csms"]
                assert report["actions"]["Authorize"] == {"agree": 2, "disagree": 2}
                details = [s["detail"] for s in report["disagreements"]]
                assert details == ["idTagInfo.status: 'Accepted' vs 'Invalid'"] * 2
            finally:
                await fleet.close()
        # The gateway restarted (a new process state, the same store): the transaction that
        # began before goes on with the candidate's id.
        async with gateway_with(primary.url, backends) as gateway:
            fleet = Fleet(gateway)
            try:
                cp = await fleet.connect("CP-C", V16)
                await meter_and_stop(cp, 101)
                await poll(
                    lambda: transaction_ids(candidate, "CP-C", "StopTransaction") == [9001],
                    "the candidate's id after the restart",
                )
                assert transaction_ids(candidate, "CP-C", "MeterValues") == [9001]
                assert transaction_ids(primary, "CP-C", "StopTransaction") == [101]
            finally:
                await fleet.close()
    report = read_report(store)
    assert report["mapped_transactions"] == 2
    assert report["actions"]["Authorize"] == {"agree": 2, "disagree": 2}


def test_candidate_report_command(tmp_path: Path, capsys: Any) -> None:
    from ocpp_gateway.fanout.store import CandidateStore

    path = str(tmp_path / "c.sqlite")
    store = CandidateStore(path)
    store.count("Authorize", "disagree")
    store.count("Authorize", "agree")
    store.sample("CP-9", "Authorize", "idTagInfo.status: 'Accepted' vs 'Invalid'", "[3]", "[3]")
    store.close()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'upstream.url = "ws://127.0.0.1:9/csms"\n[backends.next]\nrole = "candidate"\n'
        f'url = "ws://127.0.0.1:9/next"\nid_map = "{path}"\n',
        encoding="utf-8",
    )
    assert report_main(["--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "candidate next" in out
    assert "Authorize" in out and "CP-9 Authorize: idTagInfo.status" in out
    assert report_main([str(tmp_path / "missing.sqlite")]) == 2
