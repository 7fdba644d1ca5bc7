"""Limits that depend on the event loop's transports, again under uvloop (what `serve` runs)."""

from __future__ import annotations

import asyncio

from ..test_limits import slow_reader_scenario


async def test_slow_reader_under_uvloop() -> None:
    """uvloop's transports are no asyncio.Transport subclasses: the outbound bound must still
    see their write buffer."""
    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    await slow_reader_scenario()
