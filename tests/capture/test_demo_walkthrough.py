"""The README's capture walk-through on the demo: the printed console URL serves the console,
capture switched on for one demo charger fills its trace, the downloaded trace replays against
the demo's gateway (under another identity) with no difference."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import orjson

from kit import WAIT, poll
from ocpp_gateway.demo import DemoOptions, run_demo
from simulate.test_demo import Watched

from ._support import run_replay


async def test_capture_watch_download_and_replay_a_demo_charger(tmp_path: Path) -> None:
    options = DemoOptions(charge_points=2, share_201=0.5, port=0, admin_port=0, seed=5)
    out = Watched(r"connected 2/2 booted 2", tty=False)
    stop = asyncio.Event()
    task = asyncio.create_task(run_demo(options, out, stop))
    try:
        await asyncio.wait_for(out.seen.wait(), WAIT)
        found = re.search(r"web console at (http://\S+)/console/#token=(\S+)", out.getvalue())
        assert found is not None, out.getvalue()
        admin, token = found.group(1), found.group(2)
        gateway = re.search(r"-> (ws://\S+)/ocpp/", out.getvalue())
        assert gateway is not None
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as http:
            async with http.get(f"{admin}/console/") as page:
                assert page.status == 200 and "console.js" in await page.text()
            base = f"{admin}/charge-points/DEMO16-0001"
            async with http.post(f"{base}/capture", headers=auth) as answer:
                assert answer.status == 200, await answer.text()
            body = b""

            async def traced() -> bool:
                nonlocal body
                async with http.get(f"{base}/trace?download=1", headers=auth) as answer:
                    body = await answer.read()
                return len(body.splitlines()) >= 6

            deadline = asyncio.get_running_loop().time() + WAIT
            while not await traced():
                assert asyncio.get_running_loop().time() < deadline, "no frames captured"
                await poll(lambda: True, "a moment between two reads", 1)
        records = [orjson.loads(line) for line in body.splitlines()]
        assert {r["chargePointId"] for r in records} == {"DEMO16-0001"}
        path = tmp_path / "DEMO16-0001.trace.jsonl"
        await asyncio.to_thread(path.write_bytes, body)
        status, report, err = await run_replay(
            path, f"{gateway.group(1)}/ocpp", "--as", "REPLAY-1", "--fast"
        )
        assert status == 0, (report, err)
        assert "REPLAY-1 (ocpp1.6)" in report and " 0 differently" in report
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)
