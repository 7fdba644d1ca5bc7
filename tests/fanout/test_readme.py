"""The README's three setups of "Several backends per charge point", as written, against library
peers: each TOML block is taken from the README, only its example hosts (and the migration's
store path and token) pointed at loopback."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from time import monotonic
from typing import Any

import aiohttp
import ocpp.exceptions
import pytest

from interop.conftest import fixture_responder
from kit import poll
from ocpp_gateway.config import load_config
from ocpp_gateway.fanout.report import main as report_main
from ocpp_gateway.preflight import check_config
from ocpp_gateway.server import start_gateway

from .conftest import WAIT, Fleet, csms_server

README = Path(__file__).resolve().parents[2] / "README.md"
V16 = "ocpp1.6"
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


def setups() -> dict[str, str]:
    """The TOML blocks of the section, by their heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Several backends per charge point\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for heading, block in re.findall(r"### (.+?)\n.*?```toml\n(.*?)```", section, re.S):
        found[heading] = block
    return found


def pointed(block: str, hosts: dict[str, str], tmp_path: Path) -> str:
    """The block with each example URL replaced by a loopback server's."""
    for host, url in hosts.items():
        block = re.sub(rf'"ws://{re.escape(host)}(:\d+)?/ocpp"', f'"{url}"', block)
    block = block.replace("/var/lib/ocpp-gateway/", f"{tmp_path}/")
    assert ".example" not in block, block
    return block


def rejecting_new(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if action == "Authorize":
        known = str(kwargs.get("id_tag", "")).startswith("OLD")
        return {"idTagInfo": {"status": "Invalid" if known else "Accepted"}}
    return fixture_responder(version, action, kwargs)


def accepting(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    if action == "Authorize":
        return {"idTagInfo": {"status": "Accepted"}}
    return fixture_responder(version, action, kwargs)


def test_the_three_setups_are_in_the_readme() -> None:
    assert list(setups()) == [
        "CSMS and an energy manager",
        "CSMS and a reporting-only service",
        "Migration: shadow, report, cut over",
    ]


async def run_setup(block: str, tmp_path: Path) -> Any:
    path = tmp_path / "gateway.toml"
    path.write_text(block, encoding="utf-8")
    overrides = {"host": "127.0.0.1", "port": 0, "admin.port": 0}
    assert check_config(str(path), overrides=overrides) == []
    return path, await start_gateway(load_config(str(path), {}, overrides))


async def test_csms_and_energy_manager(tmp_path: Path) -> None:
    async with csms_server() as csms, csms_server() as ems:
        block = pointed(
            setups()["CSMS and an energy manager"],
            {"csms.example": csms.url, "ems.example": ems.url},
            tmp_path,
        )
        _, gateway = await run_setup(block, tmp_path)
        fleet = Fleet(gateway)
        try:
            cp = await fleet.connect("HOME-1", V16)
            await cp.call(V16, "BootNotification", BOOT)
            manager = await ems.peer("HOME-1")
            await poll(lambda: [a for a, _ in manager.handled] == ["BootNotification"], "seen")
            answer = await manager.call(V16, "TriggerMessage", {"requestedMessage": "Heartbeat"})
            assert answer.status == "Accepted"
            with pytest.raises(ocpp.exceptions.SecurityError):
                await manager.call(V16, "Reset", {"type": "Hard"})
            assert [a for a, _ in cp.handled] == ["TriggerMessage"]
        finally:
            await fleet.close()
            await asyncio.wait_for(gateway.stop(drain_timeout=0.5), WAIT)


async def test_csms_and_reporting_only(tmp_path: Path) -> None:
    async with csms_server() as csms, csms_server() as reporting:
        block = pointed(
            setups()["CSMS and a reporting-only service"],
            {"csms.example": csms.url, "reporting.example": reporting.url},
            tmp_path,
        )
        _, gateway = await run_setup(block, tmp_path)
        fleet = Fleet(gateway)
        try:
            cp = await fleet.connect("ERE-1", V16)
            await cp.call(V16, "BootNotification", BOOT)
            await cp.call(V16, "Heartbeat", {})
            peer = await reporting.peer("ERE-1")
            await poll(lambda: len(peer.handled) == 2, "the reporting service sees both")
            with pytest.raises(ocpp.exceptions.SecurityError):
                await peer.call(V16, "TriggerMessage", {"requestedMessage": "Heartbeat"})
            assert cp.handled == []
        finally:
            await fleet.close()
            await asyncio.wait_for(gateway.stop(drain_timeout=0.5), WAIT)


async def test_migration_shadow_report_cutover(tmp_path: Path, capsys: Any) -> None:
    async with csms_server(accepting) as old, csms_server(rejecting_new) as new:
        block = pointed(
            setups()["Migration: shadow, report, cut over"],
            {"old-csms.example": old.url, "new-csms.example": new.url},
            tmp_path,
        )
        token = re.search(r'token = "(.+)"', block).group(1)  # type: ignore[union-attr]
        path, gateway = await run_setup(block, tmp_path)
        fleet = Fleet(gateway)
        try:
            cp = await fleet.connect("FLEET-1", V16)
            # 1. Shadow: the chargers hear the old CSMS only.
            for tag in ("OLD-7", "NEW-1"):
                answer = await cp.call(V16, "Authorize", {"idTag": tag})
                assert answer.id_tag_info["status"] == "Accepted"
            shadow = await new.peer("FLEET-1")
            await poll(lambda: len(shadow.handled) == 2, "the new CSMS answered in the shadow")
            # 2. Report.
            gateway.tick(monotonic())  # the process timer's work (once a second): store written
            assert report_main(["--config", str(path)]) == 0
            out = capsys.readouterr().out
            assert "FLEET-1 Authorize: idTagInfo.status: 'Accepted' vs 'Invalid'" in out
            # 3. Cut over, as the README's curl does.
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{gateway.admin_url}/backends/primary",
                    data='{"backend": "new-csms"}',
                    headers={"Authorization": f"Bearer {token}"},
                ) as response,
            ):
                assert response.status == 200
            await poll(lambda: gateway.registry.live["FLEET-1"].primary == "new-csms", "switched")
            answer = await cp.call(V16, "Authorize", {"idTag": "OLD-7"})
            assert answer.id_tag_info["status"] == "Invalid"  # the new CSMS answers now
            before = await old.peer("FLEET-1")
            await poll(lambda: len(before.handled) == 3, "the old CSMS shadows the new one")
            assert len(cp.recorder.received) == 3
        finally:
            await fleet.close()
            await asyncio.wait_for(gateway.stop(drain_timeout=0.5), WAIT)


def test_every_backend_key_is_described() -> None:
    import dataclasses

    from ocpp_gateway.config import BackendConfig

    text = README.read_text(encoding="utf-8")
    section = text.split("## Several backends per charge point\n", 1)[1].split("\n## ", 1)[0]
    keys = section.split("The keys of a `[backends.<name>]` table:", 1)[1].split("\n\n", 1)[0]
    for field in dataclasses.fields(BackendConfig):
        assert f"`{field.name}`" in keys, field.name
