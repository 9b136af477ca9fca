"""The Redis job path against a real Redis: duplicates answered once, sweeps that find exactly
the messages no live queue entry covers."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial

import pytest

from sprout.core.bot import Bot
from sprout.core.delivery import Channel, Delivery, run_with_retries
from sprout.core.messages import Incoming
from sprout.core.ports import Lease, LeaseLostError
from sprout.core.prompts import Prompts
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store
from sprout.queue import Job, RedisJobs, UserLease, _marker
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
    await jobs.close(grace_s=20)


RAIN = "Rain is water falling from clouds."


def answering(store: Store, prompts: Prompts, model: FakeLLM, sender: RecordingSender) -> Delivery:
    # No message budget: these answers are long on purpose, to be cut off mid-way.
    spec = replace(WHATSAPP, max_messages=None)
    return Delivery(
        store, Bot(model, prompts, store), {"whatsapp": Channel(spec, sender, lookup=sender)}
    )


@contextlib.asynccontextmanager
async def two_workers(
    redis_server: RedisServer, store: Store, jobs: RedisJobs, job: Job
) -> AsyncIterator[RedisJobs]:
    """`jobs` and a second worker, both answering with `job`; yields the second."""
    other = RedisJobs(redis_server.url, store, lease_s=2)
    await other.start()
    try:
        jobs.serve(job, sweep_every_s=60, max_concurrent=10)
        other.serve(job, sweep_every_s=60, max_concurrent=10)
        yield other
    finally:
        await other.close(grace_s=20)


async def answered(store: Store, inbound_id: int, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while not (await store.load_job(inbound_id)).done:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_a_job_delivered_three_times_to_two_workers_is_answered_once(
    redis_server: RedisServer, store: Store, prompts: Prompts, jobs: RedisJobs
) -> None:
    sender = RecordingSender()
    delivery = answering(store, prompts, FakeLLM(RAIN, delay_s=0.01), sender)

    async def job(inbound_id: int, user_id: str, lease: Lease) -> None:
        await delivery.run(inbound_id, lease)

    async with two_workers(redis_server, store, jobs, job):
        inbound_id = await record(store, "SM1")
        for _ in range(3):
            await jobs.enqueue("whatsapp:+1", inbound_id)
        await answered(store, inbound_id)
        await asyncio.sleep(0.5)  # the other deliveries run now and must find nothing to do
        assert sender.sent == [RAIN]


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
    async with UserLease(jobs.redis, "whatsapp:+3", lease_s=5).held() as taken:
        assert taken
        assert await jobs.sweep() == 2
    for requeued in (never_queued, abandoned):
        assert float(await jobs.redis.get(_marker(requeued)) or 0) > long_ago
    assert await jobs.sweep() == 1, "once its lease is gone, the third message is queued too"
    assert await jobs.sweep() == 0


async def test_a_lease_is_exclusive_and_renewed_while_held(
    redis_server: RedisServer, store: Store
) -> None:
    jobs = RedisJobs(redis_server.url, store, lease_s=1)
    first = UserLease(jobs.redis, "whatsapp:+1", lease_s=1)
    try:
        async with first.held() as taken:
            assert taken
            await asyncio.sleep(1.5)  # longer than the lease: renewal keeps it
            first.check()
            async with UserLease(jobs.redis, "whatsapp:+1", lease_s=1).held() as second:
                assert not second
        async with UserLease(jobs.redis, "whatsapp:+1", lease_s=1).held() as second:
            assert second, "released: free for the next worker"
    finally:
        await jobs.redis.aclose()


async def test_a_holder_that_stalled_past_its_lease_knows_before_its_next_step(
    redis_server: RedisServer, store: Store
) -> None:
    jobs = RedisJobs(redis_server.url, store, lease_s=1)
    stalled = UserLease(jobs.redis, "whatsapp:+1", lease_s=1)
    try:
        async with stalled.held() as taken:
            assert taken
            stalled.check()
            time.sleep(1.1)  # noqa: ASYNC251 (the process stops: CPU starvation, a paused VM)
            with pytest.raises(LeaseLostError):
                stalled.check()
            async with UserLease(jobs.redis, "whatsapp:+1", lease_s=1).held() as successor:
                assert successor, "the lease expired in Redis: another worker takes the user"
    finally:
        await jobs.redis.aclose()


async def test_a_job_stalled_past_its_lease_stops_and_its_successor_sends_the_rest_once(
    redis_server: RedisServer, store: Store, prompts: Prompts, jobs: RedisJobs
) -> None:
    paragraphs = [" ".join(f"drop{n}-{i}" for i in range(120)) for n in range(6)]
    sender = RecordingSender(stall_s=1.2)
    model = FakeLLM("\n\n".join(paragraphs), delay_s=0.001, continues=True)
    delivery = answering(store, prompts, model, sender)
    inbound_id = await record(store, "SM1")
    stalled = UserLease(jobs.redis, "whatsapp:+1", lease_s=1)
    async with stalled.held() as taken:
        assert taken
        with pytest.raises(LeaseLostError):
            await run_with_retries(partial(delivery.run, lease=stalled), inbound_id, "+1", 0.1)
    assert len(sender.sent) == 1, "nothing after the stall: a successor may be sending it"
    successor = UserLease(jobs.redis, "whatsapp:+1", lease_s=1)
    async with successor.held() as taken:
        assert taken
        await delivery.run(inbound_id, successor)
    assert len(sender.sent) == len(set(sender.sent)) > 1
    assert " ".join("".join(sender.sent).split()) == " ".join("".join(paragraphs).split())


async def test_a_message_arriving_while_its_user_is_answered_is_answered_next_by_the_holder(
    redis_server: RedisServer, store: Store, prompts: Prompts, jobs: RedisJobs
) -> None:
    sender = RecordingSender()
    delivery = answering(store, prompts, FakeLLM(RAIN, delay_s=0.3), sender)
    started: list[str] = []
    first_started = asyncio.Event()

    async def job(inbound_id: int, user_id: str, lease: Lease) -> None:
        started.append(str(inbound_id))
        first_started.set()
        await delivery.run(inbound_id, lease)

    async with two_workers(redis_server, store, jobs, job) as other:
        first = await record(store, "SM1")
        await jobs.enqueue("whatsapp:+1", first)
        await asyncio.wait_for(first_started.wait(), 10)
        second = await record(store, "SM2")
        await other.enqueue("whatsapp:+1", second)
        await answered(store, second)
        assert started == [str(first), str(second)]
        assert len(sender.sent) == 2


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
        await jobs.close(grace_s=20)


async def test_a_job_cut_off_by_a_stop_leaves_its_message_to_the_sweep(
    redis_server: RedisServer, store: Store
) -> None:
    started = asyncio.Event()

    async def never_answers(inbound_id: int, user_id: str, lease: Lease) -> None:
        started.set()
        await asyncio.Event().wait()

    worker = RedisJobs(redis_server.url, store, lease_s=2)
    await worker.start()
    worker.serve(never_answers, sweep_every_s=60, max_concurrent=10)
    inbound_id = await record(store, "SM1")
    await worker.enqueue("whatsapp:+1", inbound_id)
    await asyncio.wait_for(started.wait(), 10)
    await worker.close(grace_s=0)

    other = RedisJobs(redis_server.url, store, lease_s=2)
    try:
        assert not (await store.load_job(inbound_id)).done  # type: ignore[union-attr]
        async with UserLease(other.redis, "whatsapp:+1", lease_s=2).held() as taken:
            assert taken, "the stopped worker let the user's lease go"
        assert await other.redis.exists(_marker(inbound_id)), "still marked as queued"
        await other.redis.set(_marker(inbound_id), time.time() - 60)  # a lease later
        assert await other.sweep() == 1
    finally:
        await other.close(grace_s=0)
