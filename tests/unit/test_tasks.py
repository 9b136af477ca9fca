import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from sprout.core.tasks import TaskSet


def events(logs: list[MutableMapping[str, Any]]) -> list[dict[str, Any]]:
    """Captured log entries without their level, to compare whole."""
    return [{k: v for k, v in entry.items() if k != "log_level"} for entry in logs]


async def test_tasks_that_end_within_the_grace_are_left_to_end() -> None:
    tasks = TaskSet("jobs")
    ended: list[str] = []

    async def short_job() -> None:
        await asyncio.sleep(0.05)
        ended.append("short")

    task = tasks.spawn(short_job(), name="short")
    await tasks.close(grace_s=60)
    assert ended == ["short"]
    assert not task.cancelled()


async def test_tasks_still_running_after_the_grace_are_cancelled_and_unwound() -> None:
    tasks = TaskSet("jobs")
    started, unwound = asyncio.Event(), asyncio.Event()

    async def endless() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits (closing a stream, say)
            unwound.set()

    task = tasks.spawn(endless(), name="endless")
    await started.wait()
    with capture_logs() as logs:
        await tasks.close(grace_s=0.05)
    assert task.cancelled()
    assert unwound.is_set(), "close returns once cancelled tasks have unwound"
    assert len(tasks) == 0
    cancelled = {"event": "tasks_cancelled", "tasks": "jobs", "count": 1, "grace_s": 0.05}
    assert cancelled in events(logs)


async def test_the_set_counts_tasks_until_they_end() -> None:
    tasks = TaskSet("jobs")
    release = asyncio.Event()
    tasks.spawn(release.wait(), name="waiting")
    quick = tasks.spawn(asyncio.sleep(0), name="quick")
    assert len(tasks) == 2
    await quick
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert len(tasks) == 1
    release.set()
    await tasks.close(grace_s=60)
    assert len(tasks) == 0


async def test_a_task_started_elsewhere_can_be_tracked_and_waited_for() -> None:
    tasks = TaskSet("deliveries")
    ended: list[str] = []

    async def library_work() -> None:
        await asyncio.sleep(0.05)
        ended.append("acknowledged")

    task = asyncio.create_task(library_work())
    tasks.track(task)
    assert len(tasks) == 1
    await tasks.close(grace_s=60)
    assert ended == ["acknowledged"]
    with pytest.raises(RuntimeError, match="deliveries is closing"):
        tasks.track(asyncio.create_task(asyncio.sleep(0)))


async def test_nothing_new_starts_once_closing() -> None:
    tasks = TaskSet("jobs")
    await tasks.close(grace_s=0)
    assert tasks.closing
    with pytest.raises(RuntimeError, match="jobs is closing"):
        tasks.spawn(asyncio.sleep(0), name="late")
    assert len(tasks) == 0


async def test_a_failed_task_is_logged_and_leaves_the_set() -> None:
    tasks = TaskSet("jobs")

    async def broken() -> None:
        raise ValueError("a bug")

    with capture_logs() as logs:
        task = tasks.spawn(broken(), name="broken")
        await asyncio.wait([task])
        await asyncio.sleep(0)
    [failure] = [entry for entry in logs if entry["event"] == "task_failed"]
    assert failure["task"] == "broken" and isinstance(failure["exc_info"], ValueError)
    assert len(tasks) == 0
    await tasks.close(grace_s=0)


async def test_close_cancelled_while_waiting_still_cancels_its_tasks() -> None:
    tasks = TaskSet("jobs")
    job = tasks.spawn(asyncio.Event().wait(), name="endless")
    closing = asyncio.create_task(tasks.close(grace_s=3600))
    await asyncio.sleep(0.05)
    closing.cancel()  # stopping in a hurry: a second signal, say
    with pytest.raises(asyncio.CancelledError):
        await closing
    await asyncio.wait([job])
    assert job.cancelled()


async def test_a_task_that_ignores_cancellation_is_named_not_waited_for_forever() -> None:
    tasks = TaskSet("jobs", unwind_s=0.1)
    started, release = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:  # the bug this guards against
                continue

    task = tasks.spawn(stubborn(), name="stubborn")
    await started.wait()
    with capture_logs() as logs:
        await tasks.close(grace_s=0)
    assert not task.done()
    assert {"event": "tasks_not_stopped", "tasks": "jobs", "names": ["stubborn"]} in events(logs)
    release.set()
    await task
