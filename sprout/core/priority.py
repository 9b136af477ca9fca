"""Acknowledging a webhook comes before answer work that shares its process.

A channel's webhook must be answered within seconds (Twilio gives up after 15 s, then retries)
while an answer can wait: it is recorded and will be sent. On one event loop, though, every
ready task is run in turn, so under a burst the acknowledgements queue behind hundreds of
answers being started, and the web server stops answering at all.

So answer work takes turns: a job's next step (starting, asking the model, recording a chunk,
sending) waits while a webhook request has been waiting longer than `LATE_S`, and steps start
one per turn of the loop, so requests that arrive meanwhile are read before the next step.
Acknowledgements that are keeping up leave the rest of the CPU to answers; ones that fall
behind get all of it until they catch up. A step never waits more than `MAX_WAIT_S`, so
answers keep flowing, more slowly, even under a flood of requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator

LATE_S = 0.010
MAX_WAIT_S = 1.0


class AckFirst:
    def __init__(self, late_s: float = LATE_S, max_wait_s: float = MAX_WAIT_S) -> None:
        self._late_s = late_s
        self._max_wait_s = max_wait_s
        self._ids = itertools.count()
        # Start times of the requests being acknowledged, oldest first (insertion order).
        self._started: dict[int, float] = {}
        self._one_done = asyncio.Event()
        self._baton = asyncio.Lock()

    @contextlib.contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Around the handling of one webhook request."""
        request_id = next(self._ids)
        self._started[request_id] = time.monotonic()
        try:
            yield
        finally:
            del self._started[request_id]
            self._one_done.set()

    def _behind(self) -> bool:
        oldest = next(iter(self._started.values()), None)
        return oldest is not None and time.monotonic() - oldest > self._late_s

    async def turn(self) -> None:
        """Wait until answer work may take a step: no request has been waiting too long (or
        this step has waited long enough), and the step before it in line has started."""
        async with self._baton:
            give_up_at = time.monotonic() + self._max_wait_s
            while self._behind() and (left := give_up_at - time.monotonic()) > 0:
                self._one_done.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._one_done.wait(), left)
            # Hand the baton on only after a turn of the loop: requests that arrived while this
            # step was waiting are read, and counted, before the next step may start.
            await asyncio.sleep(0)
