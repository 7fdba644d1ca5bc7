"""Cutover by configuration reload: SIGHUP re-reads `[backends]`; a primary change applies as
`POST /backends/primary` does (no socket dropped), other changes are reported as needing a
restart. The plan by table; the whole against a real `ocpp-gateway serve` and library peers."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.protocol import State

from interop.conftest import Peer, _make_peer, fixture_responder
from kit import LISTENING, gateway_process, poll
from ocpp_gateway.config import BackendConfig, GatewayConfig
from ocpp_gateway.config.sections import BackendRole
from ocpp_gateway.fanout.reload import ReloadPlan, plan_reload, primary_name

from .conftest import csms_server

V16 = "ocpp1.6"


def _config(roles: dict[str, BackendRole], **changes: Any) -> GatewayConfig:
    backends = {
        name: BackendConfig(
            role=role,
            url=f"ws://{name}.example/ocpp",
            id_map="/x.sqlite" if role == "candidate" else None,
        )
        for name, role in roles.items()
    }
    return dataclasses.replace(GatewayConfig(), backends=backends, **changes)


OLD_NEXT = {"old": "primary", "next": "candidate"}
SWAPPED: dict[str, BackendRole] = {"old": "candidate", "next": "primary"}
RUNNING = _config({"old": "primary", "next": "candidate", "ems": "observer"})


@pytest.mark.parametrize(
    ("roles", "new", "expected"),
    [
        # The same file: nothing to do.
        (OLD_NEXT, RUNNING, ReloadPlan()),
        # The roles swapped: a cutover, nothing else.
        (
            OLD_NEXT,
            _config({"old": "candidate", "next": "primary", "ems": "observer"}),
            ReloadPlan(primary="next"),
        ),
        # Already cut over (by the admin API): the file saying so is no change; the original
        # file is the way back.
        (
            SWAPPED,
            _config({"old": "candidate", "next": "primary", "ems": "observer"}),
            ReloadPlan(),
        ),
        (SWAPPED, RUNNING, ReloadPlan(primary="old")),
        # A cutover and other settings: the cutover applies, the rest is named.
        (
            OLD_NEXT,
            _config(
                {"old": "candidate", "next": "primary", "ems": "observer"},
                call_timeout=5.0,
                port=9100,
            ),
            ReloadPlan(primary="next", restart=("port", "call_timeout")),
        ),
        # A backend's own settings, a backend added or gone, an observer's role.
        (
            OLD_NEXT,
            dataclasses.replace(
                RUNNING,
                backends={
                    **RUNNING.backends,
                    "ems": dataclasses.replace(RUNNING.backends["ems"], role="controller"),
                    "lab": BackendConfig(),
                },
            ),
            ReloadPlan(restart=("backends.ems.role", "backends.lab")),
        ),
        (
            OLD_NEXT,
            _config(
                {"old": "primary", "next": "candidate"},
                security=dataclasses.replace(RUNNING.security, message_rate=3.0),
            ),
            ReloadPlan(restart=("security.message_rate", "backends.ems")),
        ),
        # An observer cannot become the primary without a restart.
        (
            OLD_NEXT,
            _config({"old": "candidate", "next": "candidate", "ems": "primary"}),
            ReloadPlan(
                refused="'ems' is not a candidate backend now (the primary is 'old'); only a "
                "candidate can become the primary without a restart",
                restart=("backends.ems.role", "backends.old.role", "backends.old.id_map"),
            ),
        ),
    ],
)
def test_plan_reload(
    roles: dict[str, BackendRole], new: GatewayConfig, expected: ReloadPlan
) -> None:
    live = {**roles, "ems": "observer"}
    assert plan_reload(RUNNING, live, new) == expected


def test_primary_name() -> None:
    assert primary_name(RUNNING) == "old"
    assert primary_name(GatewayConfig()) == "upstream"


def answering(status: str) -> Callable[[str, str, dict[str, Any]], dict[str, Any]]:
    """A CSMS whose Authorize answer names it."""

    def responder(version: str, action: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        if action == "Authorize":
            return {"idTagInfo": {"status": status}}
        return fixture_responder(version, action, kwargs)

    return responder


def toml(primary: str, old_url: str, next_url: str, store: Path, extra: str = "") -> str:
    """The file: `primary` is the primary, the other the candidate (with the id map)."""
    tables = []
    for name, url in (("old", old_url), ("next", next_url)):
        role = "primary" if name == primary else "candidate"
        id_map = f'id_map = "{store}"' if role == "candidate" else ""
        tables.append(f'[backends.{name}]\nrole = "{role}"\nurl = "{url}"\n{id_map}\n')
    return "\n".join([extra, *tables])


async def test_sighup_cuts_over_without_dropping_a_socket(tmp_path: Path) -> None:
    async with (
        csms_server(answering("Accepted")) as old,
        csms_server(answering("Invalid")) as new,
    ):
        store = tmp_path / "ids.sqlite"
        path = tmp_path / "gateway.toml"
        path.write_text(toml("old", old.url, new.url, store), encoding="utf-8")
        env = {"OCPP_GATEWAY_SECURITY__MESSAGE_RATE": "0", "OCPP_GATEWAY_LOG_FORMAT": "text"}
        async with gateway_process(config=path, env=env) as gateway:
            connection = await connect(f"{gateway.url}/ocpp/CP-R", subprotocols=[V16])  # type: ignore[list-item]
            cp: Peer = _make_peer(V16, "CP-R", connection, fixture_responder)
            try:

                async def answered_by() -> str:
                    answer = await cp.call(V16, "Authorize", {"idTag": "TAG"})
                    status: str = answer.id_tag_info["status"]
                    return status

                assert await answered_by() == "Accepted"  # the old CSMS is the primary

                async def primary_is(status: str) -> bool:
                    return await answered_by() == status

                # The roles swapped in the file, and a setting that needs a restart.
                path.write_text(
                    toml("next", old.url, new.url, store, "call_timeout = 30.0"),
                    encoding="utf-8",
                )
                gateway.signal(signal.SIGHUP)
                await gateway.wait_for_line(r"reload: primary changed")
                line = await gateway.wait_for_line(r"reload: settings that need a restart.*")
                assert "call_timeout" in line.group(0)
                await poll(lambda: primary_is("Invalid"), "the new CSMS answers", every=0.1)
                # And back, by the original file.
                path.write_text(toml("old", old.url, new.url, store), encoding="utf-8")
                gateway.signal(signal.SIGHUP)
                await gateway.wait_for_count(r"reload: primary changed", 2)
                await poll(lambda: primary_is("Accepted"), "the old answers again", every=0.1)
                # A file with errors changes nothing.
                path.write_text(
                    toml("old", old.url, new.url, store).replace('"candidate"', '"primary"'),
                    encoding="utf-8",
                )
                gateway.signal(signal.SIGHUP)
                await gateway.wait_for_line(r"reload: the configuration has errors")
                assert await answered_by() == "Accepted"
                # One socket the whole time: the charge point's and each backend's.
                assert connection.state is State.OPEN
                assert set(old.peers) == {"CP-R"} and set(new.peers) == {"CP-R"}
                assert len(old.connections) == len(new.connections) == 1
            finally:
                await connection.close()
                cp.task.cancel()


async def test_sighup_reaches_every_worker(tmp_path: Path) -> None:
    """Under the supervisor (workers = 2), SIGHUP is passed on: each worker reloads, none
    stops."""
    async with csms_server() as old, csms_server() as new:
        path = tmp_path / "gateway.toml"
        path.write_text(toml("old", old.url, new.url, tmp_path / "ids.sqlite"), encoding="utf-8")
        env = {"OCPP_GATEWAY_WORKERS": "2", "OCPP_GATEWAY_LOG_FORMAT": "text"}
        async with gateway_process(config=path, env=env) as gateway:
            await gateway.wait_for_count(LISTENING, 2)  # both workers handle SIGHUP by now
            gateway.signal(signal.SIGHUP)
            await gateway.wait_for_count(r"reload: nothing changed", 2)
            # Still serving: a charge point is relayed to the primary.
            connection = await connect(f"{gateway.url}/ocpp/CP-W", subprotocols=[V16])  # type: ignore[list-item]
            cp: Peer = _make_peer(V16, "CP-W", connection, fixture_responder)
            try:
                await cp.call(V16, "Heartbeat", {})
                assert "CP-W" in old.peers
            finally:
                await connection.close()
                cp.task.cancel()
