"""Group commit: writes asked for at the same time share one transaction.

A webhook request waits for its message to be recorded before it is acknowledged. Recorded
one by one, each message costs a transaction and its round trips to the database driver
(with SQLite, a hop to its thread and back for each step), most of what acknowledging costs.
Here the first caller's write starts at once; callers arriving while it runs are written
together in the next transaction, so a quiet server adds no wait and a busy one pays one
transaction per batch instead of per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 200


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        write_batch: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        max_batch: int = MAX_BATCH,
    ) -> None:
        """`write_batch` writes items in one transaction and returns their results in order."""
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_waiting())
        # A caller that gives up (its client went away) stops neither the others' write nor
        # its own, which may happen all the same, like a write whose reply was lost.
        return await asyncio.shield(future)

    async def _write_waiting(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        # Callers wait through a shield: nobody but this method settles their futures.
        try:
            results = await self._write_batch([item for item, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                batch[0][1].set_exception(error)
            else:
                for one in batch:  # one bad item fails alone
                    await self._write([one])
            return
        except BaseException:  # cancelled with the server
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
