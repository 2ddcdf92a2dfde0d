"""Another task that only yields and counts its turns: the harness of the tests that a
batch (or a loop of calls) to a server that answers at once still lets other tasks run
(issue 14: ``test_asyncio_direct_reads``, ``test_trio_fast_path``).

The measured work calls ``turns.note()`` at each step (a message taken, a call made);
``turns.stalled(span)`` lists the steps at which the ticker's count had not moved for
``span`` steps. Counts, never times: the tests stay exact under any load.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import trio

__all__ = ["Turns", "asyncio_ticker", "trio_ticker"]


class Turns:
    """The ticker's turns so far (``count``), and their count at each step noted."""

    def __init__(self) -> None:
        self.count = 0
        self.seen: list[int] = []

    def note(self) -> None:
        """Record the turns so far at one step of the measured work."""
        self.seen.append(self.count)

    def stalled(self, span: int) -> list[int]:
        """The steps at which the ticker had no turn during the ``span`` steps before."""
        seen = self.seen
        return [index for index in range(span, len(seen)) if seen[index] == seen[index - span]]


@contextlib.asynccontextmanager
async def asyncio_ticker() -> AsyncIterator[Turns]:
    """An asyncio task counting its turns (``asyncio.sleep(0)`` each) for the block."""
    turns = Turns()

    async def tick() -> None:
        while True:
            turns.count += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(tick())
    try:
        yield turns
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def trio_ticker() -> AsyncIterator[Turns]:
    """A trio task counting its turns (a checkpoint each) for the block."""
    turns = Turns()

    async def tick() -> None:
        while True:
            turns.count += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        try:
            yield turns
        finally:
            nursery.cancel_scope.cancel()
