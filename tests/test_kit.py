"""The test kit itself (tests/kit.py): bounded polling and the gateway process launcher fail the
way a test needs them to, with what was seen."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from kit import gateway_process, poll


async def test_poll_returns_the_first_truthy_value_of_a_plain_or_async_condition() -> None:
    seen = iter([0, None, "", "done"])
    assert await poll(lambda: next(seen), "a value") == "done"

    calls: list[int] = []

    async def probe() -> list[int]:
        calls.append(1)
        return calls if len(calls) == 3 else []

    assert await poll(probe, "the third probe") == [1, 1, 1]


async def test_poll_fails_with_what_it_waited_for_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"not within 0\.05 s: never \(last: 0\)"):
        await poll(lambda: 0, "never", within=0.05)


async def test_a_timeout_of_the_condition_itself_is_not_taken_for_the_bound() -> None:
    async def probe() -> bool:
        raise TimeoutError("the probe's own")

    with pytest.raises(TimeoutError, match="the probe's own"):
        await poll(probe, "a probe that times out", within=5.0)


async def test_a_gateway_that_exits_before_listening_fails_with_its_output(
    tmp_path: Path,
) -> None:
    with pytest.raises(AssertionError, match="the gateway exited before") as info:
        async with gateway_process(config=tmp_path / "missing.toml"):
            pass
    assert "missing.toml" in str(info.value)  # its error message is in the failure


async def test_a_gateway_process_reads_its_url_and_exits_on_sigterm() -> None:
    async with gateway_process() as gateway:
        assert gateway.url.startswith("ws://127.0.0.1:")
        assert int(gateway.url.rsplit(":", 1)[1]) > 0
        gateway.signal(signal.SIGTERM)
        assert await gateway.wait() == 0
        match = await gateway.wait_for_line(r"shutting down")
        assert match.group(0) == "shutting down"
