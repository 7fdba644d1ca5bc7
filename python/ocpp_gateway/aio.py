"""asyncio helpers for long-lived tasks: stop a task for certain, and notice a cancellation that an
await swallowed.

Python 3.11's `asyncio.wait_for` returns the inner result when that result and a cancellation of
the waiting task arrive in the same loop iteration: the cancellation is lost, and a `while True`
loop around it goes back to sleep although its owner asked it to stop (and awaits it forever).
Libraries built on `wait_for` (nats-py's request, redis-py's timeouts) inherit this. The task's
own `cancelling()` count still says it was asked to stop: loops check it with `raise_if_cancelling`
after every await that might have swallowed it, and owners stop their tasks with `stop`, which
cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["raise_if_cancelling", "stop"]


def raise_if_cancelling() -> None:
    """Raise CancelledError when the current task was asked to stop but an await swallowed the
    cancellation (see the module docstring).

    Raises:
        asyncio.CancelledError: the current task has a cancellation request pending.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop(tasks: Iterable[asyncio.Future[Any] | None], retry: float = 0.5) -> None:
    """Cancel `tasks` and wait until every one has ended, cancelling again each `retry` seconds
    a task that swallowed the request. The tasks' results and exceptions are not raised here;
    a cancellation of the caller is.

    Args:
        tasks: the tasks (None entries are skipped).
        retry: seconds between repeated cancellations of a task still running.
    """
    every = [task for task in tasks if task is not None]
    pending = {task for task in every if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry)
    for task in every:
        if not task.cancelled():
            task.exception()  # retrieved: asyncio logs no "never retrieved" for it
