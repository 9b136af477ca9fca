"""The chunk pipeline between recording and sending one answer."""

import asyncio
from dataclasses import replace

from sprout.core.chunking import Chunk
from sprout.core.pipeline import ChunkPipe, Ready
from sprout.core.specs import WHATSAPP


def ready(n: int, text: str) -> Ready:
    return Ready(n, Chunk(text, text), sending=False)


async def test_chunks_come_out_in_order_and_the_end_is_an_empty_take() -> None:
    pipe = ChunkPipe()
    pipe.put(ready(1, "one"))
    pipe.put(ready(2, "two"))
    pipe.close()
    taken = []
    while True:
        await pipe.wait()
        if not (batch := pipe.take()):
            break
        taken.append([r.chunk_id for r in batch])
    assert taken == [[1], [2]]


async def test_chunks_ready_together_are_taken_together_while_they_fit() -> None:
    pipe = ChunkPipe()
    for n in range(1, 4):
        pipe.put(ready(n, "x" * 700))
    assert [r.chunk_id for r in pipe.take(WHATSAPP)] == [1, 2], "a third would pass 1600"
    assert [r.chunk_id for r in pipe.take(WHATSAPP)] == [3]
    unlimited = replace(WHATSAPP, max_len=None)
    for n in range(4, 7):
        pipe.put(ready(n, "x" * 700))
    assert [r.chunk_id for r in pipe.take(unlimited)] == [4, 5, 6]


async def test_the_pipe_knows_when_the_sender_is_waiting() -> None:
    pipe = ChunkPipe()
    waiter = asyncio.create_task(pipe.wait())
    await asyncio.sleep(0)
    assert pipe.waiting and pipe.empty
    pipe.put(ready(1, "one"))
    await waiter
    assert not pipe.waiting
