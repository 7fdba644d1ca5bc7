"""Per-model rules through a running gateway: from the first BootNotification, relaxations
counted, and the rollout log that `ocpp-gateway violations` reads."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from ocpp_gateway import cli

from ._support import GatewayFactory, QueueTransport, receive_frame, scrape

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "field_frames.json"


def _field_frame(frame_id: str) -> dict[str, str]:
    frames = json.loads(FIXTURES.read_text(encoding="utf-8"))["frames"]
    return next(f for f in frames if f["id"] == frame_id)


EVLINK = _field_frame("schneider-evlink-boot-serials")

CONFIG = f"""
host = "127.0.0.1"
port = 0
drain_timeout = 0
[validation]
violation_log = "{{log}}"
[validation.models."{EVLINK["model"]}".relax]
"BootNotification.chargeBoxSerialNumber" = {{{{ max_length = 40 }}}}
"BootNotification.chargePointSerialNumber" = {{{{ max_length = 40 }}}}
"""


async def test_an_invalid_boot_notification_is_judged_under_its_models_rules(
    tmp_path: Path,
    gateway_factory: GatewayFactory,
    client: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "violations.json"
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG.format(log=log), encoding="utf-8")
    backend = QueueTransport()
    gateway = await gateway_factory(str(path), backends={"default": backend})
    frame = EVLINK["frame"].encode()
    # The field frame breaks maxLength twice; its model's relaxations let it through, bytes
    # unchanged, from this very first frame.
    ws = await client.ws_connect(f"{gateway.url}/ocpp/EVLINK1", protocols=("ocpp1.6",))
    link = await backend.next_link()
    await ws.send_bytes(frame)
    assert await link.next_sent() == frame
    metrics = await scrape(client, gateway)
    relaxed = [k for k in metrics if k.startswith("ocpp_gateway_relaxed_total{")]
    assert relaxed and sum(metrics[k] for k in relaxed) == 1.0, relaxed
    # The same frame naming another model is refused as the error table says.
    other = frame.replace(EVLINK["model"].encode(), b"Some Other Model")
    ws2 = await client.ws_connect(f"{gateway.url}/ocpp/OTHER1", protocols=("ocpp1.6",))
    link2 = await backend.next_link()
    await ws2.send_bytes(other)
    answer = json.loads(await receive_frame(ws2))
    assert answer[0] == 4 and answer[2] == "TypeConstraintViolation"
    assert link2.sent.empty()
    # The refusal is in the rollout log, by model and JSON path, and the command reads it.
    gateway.runtime.dump_violations()
    assert log.exists()
    assert cli.main(["violations", str(log)]) == 0
    table = capsys.readouterr().out
    assert "Some Other Model" in table and "SerialNumber" in table, table
    await ws.close()
    await ws2.close()
