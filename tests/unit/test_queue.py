"""The Redis job path against a real Redis: duplicates answered once, sweeps that find exactly
the messages no live queue entry covers."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from sprout.core.bot import Bot
from sprout.core.delivery import Channel, Delivery
from sprout.core.formatting import WHATSAPP
from sprout.core.messages import Incoming
from sprout.core.prompts import Prompts
from sprout.core.store import Store
from sprout.queue import RedisJobs, UserLease, _marker
from tests.services import RedisServer
from tests.unit.doubles import FakeLLM, RecordingSender


def incoming(sid: str, user: str = "whatsapp:+1") -> Incoming:
    return Incoming(channel="whatsapp", user_id=user, text="explain rain", message_id=sid)


async def record(store: Store, sid: str, user: str = "whatsapp:+1") -> int:
    inbound_id = await store.record_inbound(incoming(sid, user))
    assert inbound_id is not None
    return inbound_id


@pytest.fixture
async def jobs(redis_server: RedisServer, store: Store) -> AsyncIterator[RedisJobs]:
    jobs = RedisJobs(redis_server.url, store, lease_s=2)
    await jobs.start()
    yield jobs
    await jobs.close()


async def test_a_job_delivered_three_times_to_two_workers_is_answered_once(
    redis_server: RedisServer, store: Store, prompts: Prompts, jobs: RedisJobs
) -> None:
    sender = RecordingSender()
    bot = Bot(FakeLLM("Rain is water falling from clouds.", delay_s=0.01), prompts, store)
    delivery = Delivery(store, bot, {"whatsapp": Channel(WHATSAPP, sender)})

    async def job(inbound_id: int, user_id: str) -> None:
        await delivery.run(inbound_id)

    other = RedisJobs(redis_server.url, store, lease_s=2)
    await other.start()
    try:
        jobs.serve(job, sweep_every_s=60, max_concurrent=10)
        other.serve(job, sweep_every_s=60, max_concurrent=10)
        inbound_id = await record(store, "SM1")
        for _ in range(3):
            await jobs.enqueue("whatsapp:+1", inbound_id)
        deadline = time.monotonic() + 15
        while not (await store.load_job(inbound_id)).done:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the other deliveries run now and must find nothing to do
        assert sender.sent == ["Rain is water falling from clouds."]
    finally:
        await other.close()


async def test_a_sweep_queues_exactly_the_messages_no_live_entry_covers(
    store: Store, jobs: RedisJobs
) -> None:
    never_queued = await record(store, "SM1", "whatsapp:+1")
    just_queued = await record(store, "SM2", "whatsapp:+2")
    await jobs.enqueue("whatsapp:+2", just_queued)
    being_answered = await record(store, "SM3", "whatsapp:+3")
    abandoned = await record(store, "SM4", "whatsapp:+4")
    long_ago = time.time() - 60
    await jobs.redis.set(_marker(being_answered), long_ago)
    await jobs.redis.set(_marker(abandoned), long_ago)
    async with UserLease(jobs.redis, "whatsapp:+3", lease_s=5).held():
        assert await jobs.sweep() == 2
    for requeued in (never_queued, abandoned):
        assert float(await jobs.redis.get(_marker(requeued)) or 0) > long_ago
    assert await jobs.sweep() == 1, "once its lease is gone, the third message is queued too"
    assert await jobs.sweep() == 0


async def test_a_lease_is_exclusive_until_released(redis_server: RedisServer, store: Store) -> None:
    jobs = RedisJobs(redis_server.url, store, lease_s=1)
    order: list[str] = []

    async def hold(name: str) -> None:
        async with UserLease(jobs.redis, "whatsapp:+1", lease_s=1).held():
            order.append(f"{name} in")
            await asyncio.sleep(1.5)  # longer than the lease: renewal keeps it
            order.append(f"{name} out")

    try:
        await asyncio.gather(hold("a"), hold("b"))
    finally:
        await jobs.redis.aclose()
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


async def test_a_sweep_leaves_messages_of_channels_these_processes_do_not_serve(
    redis_server: RedisServer, store: Store
) -> None:
    web_page = Incoming(channel="web", user_id="web:abc", text="explain rain", message_id="w1")
    assert await store.record_inbound(web_page) is not None
    whatsapp = await record(store, "SM1")
    jobs = RedisJobs(redis_server.url, store, lease_s=2, channels=frozenset({"whatsapp"}))
    await jobs.start()
    try:
        assert await jobs.sweep() == 1
        assert await jobs.redis.exists(_marker(whatsapp))
    finally:
        await jobs.close()
