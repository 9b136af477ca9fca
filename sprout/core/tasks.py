"""Background tasks a part starts and must not leave behind when it stops.

A part that stops waits a bounded grace for its tasks, then cancels what is left: a platform
kills a process that takes too long to stop (Heroku 30 s after SIGTERM), and work cut off by a
cancellation resumes later from what it recorded, as after a crash.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from sprout.core.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

# How long cancelled tasks get to unwind (close a stream, release a lock) before `close` gives
# up on them: a task that swallows its cancellation is a bug, and the log says which one.
UNWIND_S = 5.0


class TaskSet:
    """Tasks spawned in the background, tracked until they end; `close` stops them all."""

    def __init__(self, name: str, unwind_s: float = UNWIND_S) -> None:
        self.name = name
        self._unwind_s = unwind_s
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
        """Run `coro` as a task of this set. Once `close` has begun, nothing new starts."""
        if self._closing:
            coro.close()  # never started: no "never awaited" warning
            raise RuntimeError(f"{self.name} is closing: no new tasks")
        task = asyncio.create_task(coro, name=name)
        self.track(task)
        return task

    def track(self, task: asyncio.Task[Any]) -> None:
        """Count a task started elsewhere (by a library) among this set's."""
        if self._closing:
            raise RuntimeError(f"{self.name} is closing: no new tasks")
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closing(self) -> bool:
        return self._closing

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        # Nobody awaits a background task: a failure would otherwise only surface as asyncio's
        # "exception was never retrieved", whenever the task is collected.
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("task_failed", tasks=self.name, task=task.get_name(), exc_info=error)

    async def close(self, grace_s: float) -> None:
        """Take no new tasks; give those running up to `grace_s` seconds to end, then cancel
        the rest and wait for them to unwind."""
        self._closing = True
        try:
            if self._tasks and grace_s > 0:
                await asyncio.wait(set(self._tasks), timeout=grace_s)
        finally:  # cancelled while waiting (stopping in a hurry): the tasks are cancelled too
            left = set(self._tasks)
            for task in left:
                task.cancel()
        if not left:
            return
        log.info("tasks_cancelled", tasks=self.name, count=len(left), grace_s=round(grace_s, 2))
        _, stuck = await asyncio.wait(left, timeout=self._unwind_s)
        if stuck:
            names = sorted(task.get_name() for task in stuck)
            log.warning("tasks_not_stopped", tasks=self.name, names=names)
