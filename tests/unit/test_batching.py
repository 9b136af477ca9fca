import asyncio
from collections.abc import Sequence

import pytest

from sprout.core.batching import GroupCommit
from sprout.core.messages import Incoming
from sprout.core.store import Store


class Table:
    """Stands in for a database: a transaction takes a moment, and one value is refused."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []

    async def write(self, items: Sequence[str]) -> list[str]:
        await asyncio.sleep(0.01)
        if "bad" in items:
            raise ValueError("refused")
        self.transactions.append(list(items))
        return [item.upper() for item in items]


async def test_a_lone_write_goes_at_once_and_those_arriving_meanwhile_share_the_next() -> None:
    table = Table()
    commit = GroupCommit(table.write)
    first = asyncio.create_task(commit.write("a"))
    await asyncio.sleep(0)  # "a" is being written when the others arrive
    rest = [asyncio.create_task(commit.write(item)) for item in "bcde"]
    assert await first == "A"
    assert [await task for task in rest] == list("BCDE")
    assert table.transactions == [["a"], ["b", "c", "d", "e"]]


async def test_a_batch_is_capped() -> None:
    table = Table()
    commit = GroupCommit(table.write, max_batch=2)
    results = await asyncio.gather(*(commit.write(item) for item in "abcde"))
    assert results == list("ABCDE")
    assert [len(batch) for batch in table.transactions] == [2, 2, 1]


async def test_an_item_that_fails_fails_alone() -> None:
    table = Table()
    commit = GroupCommit(table.write)
    results = await asyncio.gather(
        *(commit.write(item) for item in ["a", "bad", "c"]), return_exceptions=True
    )
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)


async def test_a_caller_that_gives_up_leaves_the_others_and_its_own_write_alone() -> None:
    table = Table()
    commit = GroupCommit(table.write)
    leaving = asyncio.create_task(commit.write("a"))
    staying = asyncio.create_task(commit.write("b"))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await staying == "B"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert table.transactions == [["a", "b"]]


def message(sid: int, user: str = "whatsapp:+447700900001") -> Incoming:
    return Incoming(channel="whatsapp", user_id=user, text="Explain rain", message_id=f"SM{sid}")


async def test_messages_recorded_together_are_each_new_once(store: Store) -> None:
    earlier = await store.record_inbound(message(1))
    assert earlier is not None
    # Recorded at once: two copies of message 2 (Twilio retrying), and message 1 again.
    ids = await asyncio.gather(*(store.record_inbound(message(sid)) for sid in [2, 3, 2, 1, 4]))
    fresh = [inbound_id for inbound_id in ids if inbound_id is not None]
    assert ids[2] is None and ids[3] is None
    assert len(fresh) == len(set(fresh)) == 3 and earlier not in fresh
    assert [job[0] for job in await store.unfinished()] == sorted([earlier, *fresh])
