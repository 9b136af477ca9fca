"""A lock whose waiters go in order of the message they work for, oldest first.

All jobs of a process share SQLite's one writer. Taken in arrival order, every job's next
write waits behind the writes of every other job in progress, so after a burst all answers
advance in step and all arrive late together. Taken oldest message first, the earliest
messages are answered first while the rest wait their turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
from collections.abc import AsyncIterator, Iterator

FIRST = -1  # work for no message in particular (a delivery status, say) goes first
# The message a task works for: its inbound id, which grows with arrival.
_working_for: contextvars.ContextVar[int] = contextvars.ContextVar("working_for", default=FIRST)


@contextlib.contextmanager
def working_for(inbound_id: int) -> Iterator[None]:
    token = _working_for.set(inbound_id)
    try:
        yield
    finally:
        _working_for.reset(token)


class OldestFirstLock:
    def __init__(self) -> None:
        self._held = False
        self._order = itertools.count()
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        if self._held:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (_working_for.get(), next(self._order), future))
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._hand_on()  # it was handed to us as we were cancelled
                raise
        self._held = True
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        while self._waiting:
            *_, future = heapq.heappop(self._waiting)
            if not future.done():
                future.set_result(None)  # ownership passes on: stays held
                return
        self._held = False
