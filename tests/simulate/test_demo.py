"""`ocpp-gateway demo`: options, plain and live output, a busy port, the CLI wiring."""

from __future__ import annotations

import asyncio
import io
import re
import socket
from pathlib import Path

import pytest

from kit import WAIT, require_tool
from ocpp_gateway import cli
from ocpp_gateway.demo import DemoOptions, parse_args, run_demo

from .conftest import SchemaCsms


class Watched(io.StringIO):
    """A text stream that sets `seen` once everything written matches the regex `needle`."""

    def __init__(self, needle: str, tty: bool) -> None:
        super().__init__()
        self.needle = re.compile(needle)
        self.tty = tty
        self.seen = asyncio.Event()

    def write(self, text: str) -> int:
        n = super().write(text)
        if self.needle.search(self.getvalue()):
            self.seen.set()
        return n

    def isatty(self) -> bool:
        return self.tty


async def run_until(options: DemoOptions, out: Watched) -> int:
    stop = asyncio.Event()
    task = asyncio.create_task(run_demo(options, out, stop))
    waiter = asyncio.create_task(out.seen.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=WAIT, return_when="FIRST_COMPLETED")
    assert waiter in done, out.getvalue()
    stop.set()
    return await asyncio.wait_for(task, WAIT)


def test_parse_args_defaults_and_checks() -> None:
    options = parse_args([])
    assert options.charge_points == 50 and options.port == 8180 and options.duration is None
    assert options.admin_port == 8181 and options.admin_token == "demo-admin-token"
    assert options.upstream is None
    options = parse_args(["--charge-points", "7", "--duration", "3", "--port", "0"])
    assert (options.charge_points, options.duration, options.port) == (7, 3.0, 0)
    for bad in (["--charge-points", "0"], ["--misbehave", "2"], ["--duration", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


async def test_plain_output_reports_the_fleet_and_a_summary() -> None:
    options = DemoOptions(charge_points=6, port=0, admin_port=0, interval=0.2, seed=1)
    out = Watched("connected 6/6 booted 6 ", tty=False)
    assert await run_until(options, out) == 0
    text = out.getvalue()
    assert text.startswith("ocpp-gateway demo: 6 charge points -> ws://127.0.0.1:")
    assert "backend: the embedded local responder;" in text
    assert "/metrics" in text
    summary = text.split("metrics were at ")[-1]
    assert "BootNotification" in summary and "StatusNotification" in summary


async def test_live_view_renders_on_a_terminal() -> None:
    options = DemoOptions(charge_points=4, port=0, admin_port=0, interval=0.2, seed=2)
    out = Watched("4/4 connected, 4 booted", tty=True)
    assert await run_until(options, out) == 0
    text = out.getvalue()
    assert "ocpp-gateway demo" in text
    assert "CALLs from charge points" in text
    assert "Rejected by the gateway" in text
    # The live view says which backend answers and where the API is, as the plain lines do.
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # without the terminal's styles
    assert re.search(r"backend +the embedded local responder", plain), plain
    assert re.search(r"API +http://127\.0\.0\.1:\d+/charge-points \(Authorization: Bearer", plain)
    assert "demo-admin-token" in plain


async def test_a_busy_port_is_an_error_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = await asyncio.wait_for(
            run_demo(DemoOptions(port=port, admin_port=0), io.StringIO()), WAIT
        )
    assert code == 1
    assert "cannot start the gateway" in capsys.readouterr().err


def test_the_cli_routes_demo_to_this_module(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "--charge-points" in capsys.readouterr().out


async def test_with_an_upstream_the_csms_sees_only_valid_calls(csms: SchemaCsms) -> None:
    # Every charge point misbehaves: the gateway must stop each invalid frame.
    options = DemoOptions(
        charge_points=4,
        port=0,
        admin_port=0,
        interval=0.2,
        seed=3,
        upstream=csms.url,
        misbehave=1.0,
    )
    out = Watched(r"connected 4/4 booted 4 .*rejected [1-9]", tty=False)
    stop = asyncio.Event()
    task = asyncio.create_task(run_demo(options, out, stop))
    await asyncio.wait_for(out.seen.wait(), WAIT)
    await csms.wait_until(lambda: csms.count("StatusNotification") >= 8)
    stop.set()
    assert await asyncio.wait_for(task, WAIT) == 0
    assert {c.charge_point_id for c in csms.calls} == {
        "DEMO16-0001",
        "DEMO16-0002",
        "DEMO201-0001",
        "DEMO201-0002",
    }
    assert [c for c in csms.calls if c.errors] == []
    assert "TypeConstraintViolation" in out.getvalue() or "PropertyConstraint" in out.getvalue()


def test_parse_args_transport() -> None:
    assert parse_args([]).transport == "local"
    assert parse_args(["--transport", "nats"]).transport == "nats"
    for bad in (["--transport", "kafka"], ["--transport", "redis", "--upstream", "ws://x/ocpp"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


@pytest.mark.parametrize("transport", ["nats", "redis"])
async def test_demo_on_a_broker_runs_broker_gateway_and_example_backend(transport: str) -> None:

    require_tool("nats-server" if transport == "nats" else "redis-server")
    options = DemoOptions(
        charge_points=4,
        port=0,
        admin_port=0,
        interval=0.2,
        seed=1,
        plain=True,
        transport=transport,
        misbehave=0.0,
    )
    out = Watched("connected 4/4 booted 4 ", tty=False)
    assert await run_until(options, out) == 0
    text = out.getvalue()
    kind = "nats" if transport == "nats" else "redis"
    assert f"backend: {kind} at {kind}://127.0.0.1:" in text
    assert "consumed by the example backend service" in text
    # Every boot was answered through the broker by the example backend.
    assert re.search(r"BootNotification +sent +(\d+) +answered +\1 ", text), text
    assert "backend journal (" in text.splitlines()[-1]


async def test_observe_mode_keeps_a_rollout_log_that_violations_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README rollout step 1 on the demo fleet: observe everything, then read which models
    break which rules."""
    log = tmp_path / "violations.json"
    options = DemoOptions(
        charge_points=12,
        port=0,
        admin_port=0,
        interval=0.2,
        seed=3,
        misbehave=1.0,
        observe=True,
        violation_log=str(log),
    )
    out = Watched("connected 12/12 booted 12 ", tty=False)
    assert await run_until(options, out) == 0
    assert log.exists(), "the gateway writes the log from its timer and when it stops"
    capsys.readouterr()
    assert cli.main(["violations", str(log)]) == 0
    table = capsys.readouterr().out
    # The demo's misbehaving chargers send over-long model names: logged by model and path.
    assert "BootNotification" in table and "maxLength" in table, table
    assert cli.main(["violations", "--toml", str(log)]) == 0
    assert "[validation.models." in capsys.readouterr().out


async def test_the_admin_api_drives_a_simulated_charger_as_the_readme_shows() -> None:
    import aiohttp

    options = DemoOptions(charge_points=2, share_201=0.5, port=0, admin_port=0, seed=4)
    out = Watched(r"connected 2/2 booted 2", tty=False)
    stop = asyncio.Event()
    task = asyncio.create_task(run_demo(options, out, stop))
    await asyncio.wait_for(out.seen.wait(), WAIT)
    found = re.search(r"charge point API at (http://\S+)/charge-points", out.getvalue())
    assert found is not None, out.getvalue()
    api = found.group(1)
    auth = {"Authorization": "Bearer demo-admin-token"}
    calls = [
        ("DEMO16-0001", "Reset", {"type": "Soft"}),
        ("DEMO16-0001", "TriggerMessage", {"requestedMessage": "Heartbeat"}),
        ("DEMO16-0001", "RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1}),
        ("DEMO201-0001", "Reset", {"type": "Immediate"}),
        ("DEMO201-0001", "TriggerMessage", {"requestedMessage": "Heartbeat"}),
        (
            "DEMO201-0001",
            "RequestStartTransaction",
            {"idToken": {"idToken": "TAG1", "type": "ISO14443"}, "remoteStartId": 1},
        ),
    ]
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{api}/charge-points", headers=auth) as resp:
                listing = (await resp.json())["charge_points"]
            assert {cp["id"] for cp in listing} == {"DEMO16-0001", "DEMO201-0001"}
            assert all(cp["vendor"] and cp["model"] for cp in listing)
            for charge_point_id, action, payload in calls:
                async with client.post(
                    f"{api}/charge-points/{charge_point_id}/calls",
                    headers=auth,
                    json={"action": action, "payload": payload},
                ) as resp:
                    assert resp.status == 200, (action, await resp.text())
                    result = (await resp.json())["result"]
                assert result.get("status") in ("Accepted", "Rejected"), (action, result)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, WAIT) == 0


def test_parse_args_candidate() -> None:
    assert parse_args([]).candidate is False
    options = parse_args(["--candidate", "--candidate-store", "x.sqlite"])
    assert options.candidate and options.candidate_store == "x.sqlite"
    with pytest.raises(SystemExit):
        parse_args(["--candidate-store", "x.sqlite"])


async def test_candidate_demo_shows_agreements_and_disagreements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo --candidate`: the second CSMS lacks the cards of every third charge point, so
    their Authorize (and transaction) answers disagree; the plain lines count the outcomes,
    the summary reports the disagreements, and `candidate-report` reads the same store."""
    store = tmp_path / "next-csms.sqlite"
    options = DemoOptions(
        charge_points=6,
        port=0,
        admin_port=0,
        interval=0.2,
        seed=1,
        misbehave=0.0,
        candidate=True,
        candidate_store=str(store),
    )
    out = Watched(r"\| candidate agree [1-9]\d* disagree [1-9]\d* missing \d+", tty=False)
    assert await run_until(options, out) == 0
    text = out.getvalue()
    first = text.splitlines()[0]
    assert "backend: the embedded local responder;" in first
    assert re.search(r"candidate: next-csms at ws://127\.0\.0\.1:\d+/ocpp ", first), first
    assert f"ocpp-gateway candidate-report {store}" in first
    report = text.split("candidate next-csms: ")[-1]
    lines = report.splitlines()
    assert "latest disagreements:" in lines
    # Only the charge points whose cards the candidate lacks, only on card answers.
    disagreements = [line.split()[1:3] for line in lines if line.startswith("- ")]
    assert disagreements
    assert {cp for cp, _ in disagreements} <= {"DEMO16-0003", "DEMO201-0003"}
    card_actions = {"Authorize:", "StartTransaction:", "TransactionEvent:"}
    assert {action for _, action in disagreements} <= card_actions
    rows = {line.split()[0]: line.split()[1:] for line in lines if line[:1].isupper()}
    assert rows["BootNotification"] == ["6", "0", "0"]  # every boot answered alike
    capsys.readouterr()
    assert cli.main(["candidate-report", str(store)]) == 0
    assert capsys.readouterr().out.strip() == f"candidate {store}: {report}".strip()


async def test_candidate_in_the_live_view() -> None:
    options = DemoOptions(
        charge_points=3, port=0, admin_port=0, interval=0.2, seed=2, candidate=True
    )
    out = Watched(r"agree [1-9]\d* disagree \d+ missing", tty=True)
    assert await run_until(options, out) == 0
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert re.search(r"candidate +next-csms at ws://127\.0\.0\.1:\d+/ocpp", plain), plain
    assert "/candidates" in plain
