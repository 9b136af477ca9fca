import asyncio

import pytest

from sprout.core.oldest_first import OldestFirstLock, working_for


async def take(lock: OldestFirstLock, order: list[str], name: str, message: int | None) -> None:
    if message is None:
        async with lock.held():
            order.append(name)
        return
    with working_for(message):
        async with lock.held():
            order.append(name)


async def test_waiters_go_oldest_message_first_and_other_work_before_them() -> None:
    lock = OldestFirstLock()
    order: list[str] = []
    async with lock.held():
        waiting = [
            asyncio.create_task(take(lock, order, name, message))
            for name, message in [("job 7", 7), ("job 3", 3), ("ack", None), ("job 5", 5)]
        ]
        await asyncio.sleep(0.01)
        assert order == []
    await asyncio.gather(*waiting)
    assert order == ["ack", "job 3", "job 5", "job 7"]


async def test_a_waiter_that_gives_up_holds_nobody_up() -> None:
    lock = OldestFirstLock()
    order: list[str] = []
    async with lock.held():
        leaving = asyncio.create_task(take(lock, order, "leaving", 1))
        staying = asyncio.create_task(take(lock, order, "staying", 2))
        await asyncio.sleep(0.01)
        leaving.cancel()
    await asyncio.wait_for(staying, timeout=1)
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert order == ["staying"]
    async with lock.held():  # free again
        pass


async def test_a_waiter_cancelled_as_it_is_handed_the_lock_hands_it_on() -> None:
    lock = OldestFirstLock()
    order: list[str] = []
    first = asyncio.create_task(take(lock, order, "first", 1))
    second = asyncio.create_task(take(lock, order, "second", 2))
    async with lock.held():
        await asyncio.sleep(0.01)
    first.cancel()  # handed the lock on release, cancelled before it could run
    await asyncio.wait_for(second, timeout=1)
    assert order == ["second"]
