"""Group commit: what arrives while a batch is written goes into the next one; every waiter gets its own
result, or is cancelled with the writer."""

from __future__ import annotations

import asyncio

import pytest

from bot.batching import GroupCommit


async def test_what_arrives_during_a_write_goes_into_the_next_batch_and_each_gets_its_result() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def write(batch: list[int]) -> list[int]:
        batches.append(batch)
        if len(batches) == 1:
            await release.wait()
        return [item * 10 for item in batch]

    group: GroupCommit[int, int] = GroupCommit(write)
    first = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)  # the first batch is being written
    later = [asyncio.ensure_future(group.submit(item)) for item in (2, 3, 4)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(first, *later) == [10, 20, 30, 40]
    assert batches == [[1], [2, 3, 4]]
    assert await group.submit(5) == 50 and batches[-1] == [5], "an idle writer takes the next item at once"


async def test_a_cancelled_write_cancels_its_waiters_and_those_of_the_next_batch() -> None:
    started = asyncio.Event()

    async def write(batch: list[int]) -> list[None]:
        started.set()
        await asyncio.Event().wait()  # never finishes
        return [None] * len(batch)

    group: GroupCommit[int, None] = GroupCommit(write)
    first = asyncio.ensure_future(group.submit(1))
    await started.wait()
    second = asyncio.ensure_future(group.submit(2))
    await asyncio.sleep(0)
    assert group._writing is not None
    group._writing.cancel()  # what stopping the service does to every task
    for waiter in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await waiter
