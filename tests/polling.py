"""Waiting in tests for a condition, bounded in time (never a bare sleep standing in for it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

#: Seconds a test waits for anything by default.
WAIT = 30.0


async def poll(condition: Callable[[], Any], what: str, within: float = WAIT) -> Any:
    """Wait until `condition()` is truthy (checked every 20 ms), at most `within` seconds.

    Args:
        condition: what to check.
        what: said in the failure.
        within: seconds allowed.

    Returns:
        The truthy value.

    Raises:
        AssertionError: not within `within` seconds.
    """
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)
