"""The hostile corpus (tests/hostile/corpus.json) against a real gateway on loopback.

Each version's cases run over one charge point connection (reopened after a close); afterwards
the gateway must still serve, and the memory the cases allocated must be released.
"""

from __future__ import annotations

import base64
import gc
import json
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ocpp_gateway.server import RunningGateway

from .conftest import Probe, matches

CORPUS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "corpus.json").read_text())
VERSIONS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")


def test_corpus_is_large_and_covers_every_version() -> None:
    assert len(CORPUS) >= 200
    for version in VERSIONS:
        kinds = {c["id"].split("/")[1] for c in CORPUS if c["version"] == version}
        assert kinds == {"framework", "message-type", "action", "payload"}


def frame_of(case: dict[str, Any]) -> bytes | str:
    if "text_b64" in case:
        return base64.b64decode(case["text_b64"])
    text: str = case["text"]
    return text


async def run_cases(probe: Probe, cases: list[dict[str, Any]]) -> list[str]:
    failures = []
    for case in cases:
        seen = await probe.exchange(frame_of(case), text=True)
        if not matches(case["expect"], seen):
            failures.append(f"{case['id']}: expected {case['expect']}, got {seen}")
    return failures


@pytest.mark.parametrize("version", VERSIONS)
async def test_corpus(gateway: RunningGateway, version: str) -> None:
    cases = [c for c in CORPUS if c["version"] == version]
    probe = Probe(gateway.url, version)
    # Warm up (schemas, first connection) before measuring memory.
    await run_cases(probe, cases[:20])
    await probe.close()
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        failures = await run_cases(probe, cases)
        await probe.close()
        # Once the connection is gone, what the cases allocated must be gone too.
        fresh = Probe(gateway.url, version)
        still = await fresh.exchange(json.dumps([2, "after", "Heartbeat", {}]))
        await fresh.close()
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert failures == [], "\n".join(failures)
    assert still["close"] is None
    assert [a[:2] for a in still["answers"]] == [[3, "after"]]
    assert after - before < 1024 * 1024, f"{after - before} bytes still allocated"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url.replace('ws', 'http', 1)}/healthz") as resp,
    ):
        assert resp.status == 200
