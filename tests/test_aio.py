"""aio: stopping a task that swallows its cancellation, as Python 3.11's wait_for can."""

from __future__ import annotations

import asyncio
import contextlib

from ocpp_gateway.aio import raise_if_cancelling, stop


async def _swallows_once(entered: asyncio.Event, rounds: list[int]) -> None:
    """A loop whose await loses the first cancellation (what wait_for does in a race)."""
    swallowed = False
    while True:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed = True  # lost, as a library's wait_for can lose it
        rounds.append(1)


async def _checks(entered: asyncio.Event, rounds: list[int]) -> None:
    """The same loop with the check the gateway's loops make after such an await."""
    while True:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # lost
            await asyncio.sleep(3600)
        raise_if_cancelling()
        rounds.append(1)


async def test_stop_cancels_again_until_the_task_ended() -> None:
    entered = asyncio.Event()
    rounds: list[int] = []
    task = asyncio.create_task(_swallows_once(entered, rounds))
    await entered.wait()
    await asyncio.wait_for(stop([task], retry=0.05), 10)
    assert task.done() and task.cancelled()
    assert rounds == [1]  # it went round once after the lost cancellation, then ended


async def test_a_loop_that_checks_ends_at_the_first_cancellation() -> None:
    entered = asyncio.Event()
    rounds: list[int] = []
    task = asyncio.create_task(_checks(entered, rounds))
    await entered.wait()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done == {task} and task.cancelled()
    assert rounds == []


async def test_stop_skips_none_and_finished_tasks_and_retrieves_their_errors() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.wait({failed})
    await stop([None, failed])
    assert failed.done() and isinstance(failed.exception(), ValueError)


async def test_raise_if_cancelling_is_quiet_in_a_task_not_asked_to_stop() -> None:
    raise_if_cancelling()  # no exception
