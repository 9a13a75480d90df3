"""Group commit: what callers submit while a batch is being written goes into the next batch, one write each.

Under load this turns many small writes (one per update) into a few larger ones, each its own transaction or
statement; with no load a batch holds one item and costs what a direct write would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


class GroupCommit(Generic[_Item, _Result]):
    """``write`` gets a batch and returns one result per item, in order; it should not raise (a batch that
    fails is the writer's to log and to answer for, e.g. with "not written" for each item). Cancelled (the
    service stops), the batch's and the next batch's waiters are cancelled, not left waiting."""

    def __init__(self, write: Callable[[list[_Item]], Awaitable[list[_Result]]]) -> None:
        self._write = write
        self._pending: list[tuple[_Item, asyncio.Future[_Result]]] = []
        self._writing: asyncio.Future[None] | None = None

    async def submit(self, item: _Item) -> _Result:
        """Wait for ``item``'s batch to be written; its result."""
        done: asyncio.Future[_Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if self._writing is None:
            self._writing = asyncio.ensure_future(self._write_pending())
        return await done

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._write([item for item, _ in batch])
                except BaseException as error:
                    for _, done in (*batch, *self._pending):
                        if done.done():
                            continue
                        if isinstance(error, asyncio.CancelledError):
                            done.cancel()
                        else:
                            done.set_exception(error)
                    self._pending = []
                    raise
                for (_, done), result in zip(batch, results, strict=True):
                    if not done.done():
                        done.set_result(result)
        finally:
            self._writing = None
