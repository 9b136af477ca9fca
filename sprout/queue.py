"""Jobs through Redis: web processes record and enqueue, `sprout worker` processes answer.

taskiq's Redis Streams broker hands each job to one worker; a job its worker never
acknowledged (the worker died) goes to another worker once it has been idle for
SPROUT_JOB_LEASE_S. Around it:

- A lease per user (a Redis lock, renewed while the job runs) keeps two workers from answering
  one user at once. The holder answers all of that user's unfinished messages in arrival
  order, so the order holds whichever worker received which job; a job that finds the lease
  taken flags the holder to look again, and a second delivery of a job has nothing to do. A
  holder checks its lease before every write and send, so one that stalled past it stops
  instead of racing its successor.
- The database stays the record of what is unanswered. Each queued message has a marker key
  (when it was queued) beside the stream. A periodic sweep re-enqueues an unanswered message
  whose marker is missing (queueing failed while Redis was down, or a restarted Redis lost its
  data, markers and stream alike), or is older than a lease while nobody holds its user's
  lease (its worker died; taskiq-redis reclaims such entries only when new ones arrive). A
  needless second entry costs one lookup: its job finds the message answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import LockError, LockNotOwnedError, RedisError, ResponseError
from taskiq import AckableMessage
from taskiq.api import run_receiver_task
from taskiq.exceptions import SendTaskError
from taskiq.kicker import AsyncKicker
from taskiq_redis import RedisStreamBroker

from sprout.core.logs import get_logger, user_ref
from sprout.core.metrics import ENQUEUE_FAILURES
from sprout.core.ports import Lease, LeaseLostError
from sprout.core.store import Store
from sprout.core.tasks import TaskSet

log = get_logger(__name__)

TASK_NAME = "sprout.answer_user"
STREAM = "sprout:jobs"
GROUP = "sprout-workers"
SWEEP_KEY = "sprout:sweep"
RECONNECT_WAIT_S = 1.0
# Old entries are trimmed; one trimmed before it ran loses its marker's protection and the
# sweep queues it again, so the cap costs latency, never an answer.
STREAM_MAX_LEN = 100_000
MARKER_TTL_S = 24 * 3600
# After its job has ended, a delivery only has its acknowledgement to send: one round trip.
ACK_WAIT_S = 2.0

Job = Callable[[int, str, Lease], Awaitable[None]]
"""Answers one recorded message (inbound id, user id) under the user's lease, retrying
passing faults itself; raises LeaseLostError when the lease ran out."""


def _marker(inbound_id: int) -> str:
    return f"sprout:queued:{inbound_id}"


def _lease_key(user_id: str) -> str:
    # Keys are visible to anyone with Redis access: no phone numbers in them.
    return "sprout:user:" + hashlib.sha256(user_id.encode()).hexdigest()[:32]


def _more_key(user_id: str) -> str:
    """Set by a job that found the user's lease taken: the holder has more to look at."""
    return _lease_key(user_id) + ":more"


class QueueUnavailableError(Exception):
    """Redis could not take a job now."""


class ResilientStreamBroker(RedisStreamBroker):
    """Keeps listening through Redis outages: waits, re-creates the consumer group (a Redis
    restarted without persistence has none), and carries on."""

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        while True:
            try:
                async for message in super().listen():
                    yield message
            except (RedisError, OSError) as error:
                log.warning("redis_unreachable", error=type(error).__name__)
                await asyncio.sleep(RECONNECT_WAIT_S)
                await self.ensure_group()

    async def ensure_group(self) -> None:
        """Create the consumer group, reading from the stream's start: entries queued before
        any worker existed are still answered."""
        async with Redis(connection_pool=self.connection_pool) as redis:
            try:
                await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
            except (RedisError, OSError):
                pass  # still down: the next listen attempt reports it


class UserLease:
    """Exclusive right to answer one user, renewed while held; a dead or stalled holder's
    lease expires after `lease_s` and the user's jobs go on elsewhere.

    Redis expires the key `lease_s` after it last set it, which is after the moment this side
    asked it to: from that moment the lease is surely ours for `lease_s`. `check` demands a
    margin of it, so a holder that stalled (CPU starvation, a paused VM) past its lease finds
    out before its next write or send, and no successor can have started within the margin.
    """

    def __init__(self, redis: Redis, user_id: str, lease_s: float) -> None:
        self._lock = redis.lock(_lease_key(user_id), timeout=lease_s)
        self._lease_s = lease_s
        self._user_id = user_id
        self._valid_until = 0.0

    def check(self) -> None:
        if time.monotonic() > self._valid_until - self._lease_s / 4:
            raise LeaseLostError

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 4)
            asked_at = time.monotonic()
            try:
                await self._lock.extend(self._lease_s, replace_ttl=True)
            except LockNotOwnedError:
                log.warning("lease_expired", user=user_ref(self._user_id))
                return
            except LockError:
                return  # released already: the job is over
            except (RedisError, OSError) as error:
                # Redis is away: `check` stops the job once the margin is gone.
                log.warning("lease_not_renewed", user=user_ref(self._user_id), error=str(error))
                continue
            self._valid_until = asked_at + self._lease_s

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[bool]:
        """Take the lease if it is free; yields whether it was taken."""
        asked_at = time.monotonic()
        if not await self._lock.acquire(blocking=False):
            yield False
            return
        self._valid_until = asked_at + self._lease_s
        renewing = asyncio.create_task(self._renew())
        try:
            yield True
        finally:
            renewing.cancel()
            with contextlib.suppress(LockError, RedisError, OSError):
                await self._lock.release()


class RedisJobs:
    """The Redis side of the job path, for both web processes (enqueue) and workers."""

    def __init__(
        self, url: str, store: Store, lease_s: float, channels: frozenset[str] | None = None
    ) -> None:
        """`channels`: the channels whose messages these processes answer (None: all)."""
        self._store = store
        self._lease_s = lease_s
        self._channels = channels
        self.broker = ResilientStreamBroker(
            url,
            queue_name=STREAM,
            consumer_group_name=GROUP,
            consumer_id="0",
            idle_timeout=int(lease_s * 1000),
            unacknowledged_lock_timeout=lease_s,
            xread_block=1000,
            maxlen=STREAM_MAX_LEN,
            max_connection_pool_size=200,
        )
        self.redis: Redis = Redis.from_url(url)
        self._kicker: AsyncKicker[Any, Any] = AsyncKicker(TASK_NAME, self.broker, labels={})
        self._loops = TaskSet("redis-loops")  # taking jobs from the stream, and the sweep
        self._jobs = TaskSet("jobs")
        # taskiq's own tasks, one per delivery: each acknowledges its delivery once our job
        # has ended, and Redis must still be open for that.
        self._deliveries = TaskSet("deliveries")

    async def start(self) -> None:
        await self.broker.startup()

    async def enqueue(self, user_id: str, inbound_id: int) -> None:
        """Queue a recorded message's job. Raises QueueUnavailableError when Redis is away (the
        message is recorded all the same: the sweep queues it once Redis is back)."""
        try:
            await self.redis.set(_marker(inbound_id), time.time(), ex=MARKER_TTL_S)
            await self._kicker.kiq(user_id, inbound_id)
        except (RedisError, OSError, SendTaskError) as error:
            raise QueueUnavailableError(type(error).__name__) from error

    async def submit(self, user_id: str, inbound_id: int) -> None:
        """Queue a recorded message's job; if Redis is away, count it and leave it recorded:
        a worker's sweep queues it once Redis is back."""
        try:
            await self.enqueue(user_id, inbound_id)
        except QueueUnavailableError as error:
            ENQUEUE_FAILURES.inc()
            log.warning("enqueue_failed", inbound=inbound_id, error=str(error))

    async def ping(self) -> None:
        await self.redis.ping()

    def serve(self, job: Job, sweep_every_s: float, max_concurrent: int) -> None:
        """Answer queued jobs (this process is a worker) and sweep up unqueued messages."""

        async def answer_user(user_id: str, inbound_id: int) -> None:
            # The job runs as a task of ours, so a stop cancels the job and not taskiq's task:
            # taskiq would log that cancellation as a crash, traceback and all. Cut off or not,
            # the delivery is then acknowledged; a job cut off leaves its message unanswered and
            # its marker in place, and the sweep queues it again once its lease is over.
            current = asyncio.current_task()
            if current is None or self._jobs.closing:
                return  # stopping: the same as a job cut off
            self._deliveries.track(current)
            answering = self._jobs.spawn(
                self._answering(job, user_id), name=f"jobs-{user_ref(user_id)}"
            )
            await asyncio.wait([answering])

        self.broker.register_task(answer_user, task_name=TASK_NAME)
        self.broker.is_worker_process = True
        receiver = run_receiver_task(self.broker, max_async_tasks=max_concurrent)
        self._loops.spawn(receiver, name="redis-receiver")
        self._loops.spawn(self._sweep_forever(sweep_every_s), name="redis-sweep")

    async def _answering(self, job: Job, user_id: str) -> None:
        try:
            await self._answer_user(job, user_id)
        except LeaseLostError:
            # This worker stalled past its lease; the sweep hands the rest on.
            log.warning("lease_lost", user=user_ref(user_id))

    async def _answer_user(self, job: Job, user_id: str) -> None:
        """Answer all the user's unfinished messages in arrival order, if nobody else is.

        A job that finds the lease taken leaves a flag for the holder and ends (no job sits
        polling for a busy user's lease). The holder, once it has let the lease go, takes the
        flag and looks again. The flag is set before a second try for the lease, so a second
        try that fails means the flag was there before the holder let go: no message is left
        behind, and a holder that finds no flag is done without querying the database again."""
        attempted: set[int] = set()
        flagged = False
        while True:
            lease = UserLease(self.redis, user_id, self._lease_s)
            async with lease.held() as taken:
                if taken:
                    for inbound_id in await self._not_attempted(user_id, attempted):
                        attempted.add(inbound_id)  # one try per holding: a failing one waits
                        await job(inbound_id, user_id, lease)  # for the sweep
                        with contextlib.suppress(RedisError, OSError):
                            await self.redis.delete(_marker(inbound_id))
            if taken:
                if not await self.redis.getdel(_more_key(user_id)):
                    return
            elif flagged:
                return
            else:
                await self.redis.set(_more_key(user_id), 1, ex=MARKER_TTL_S)
                flagged = True

    async def _not_attempted(self, user_id: str, attempted: set[int]) -> list[int]:
        unfinished = await self._store.unfinished(user_id, self._channels)
        return [inbound_id for inbound_id, _ in unfinished if inbound_id not in attempted]

    async def _sweep_forever(self, every_s: float) -> None:
        while True:
            try:
                # One sweeper per period across all workers.
                if await self.redis.set(SWEEP_KEY, 1, nx=True, ex=max(1, int(every_s * 0.8))):
                    await self.sweep()
            except Exception as error:  # a sweep that fails now runs again next period
                log.warning("sweep_failed", error=type(error).__name__)
            await asyncio.sleep(every_s)

    async def sweep(self) -> int:
        """Queue every unanswered message that no live queue entry covers; how many it queued."""
        pending = await self._store.unfinished(channels=self._channels)
        if not pending:
            return 0
        markers = await self.redis.mget([_marker(inbound_id) for inbound_id, _ in pending])
        now = time.time()
        queued = 0
        for (inbound_id, user_id), queued_at in zip(pending, markers, strict=True):
            if queued_at is not None and now - float(queued_at) < self._lease_s:
                continue  # just queued
            if queued_at is not None and await self.redis.exists(_lease_key(user_id)):
                continue  # a live worker is answering this user and will reach it
            await self.enqueue(user_id, inbound_id)
            queued += 1
        if queued:
            log.info("swept", jobs=queued)
        return queued

    async def close(self, grace_s: float) -> None:
        """Stop taking jobs, let running ones finish for up to `grace_s` seconds, then cancel
        them (the sweep queues their messages again), and close the connections."""
        await self._loops.close(0)
        await self._jobs.close(grace_s)
        await self._deliveries.close(ACK_WAIT_S)
        await self.broker.shutdown()
        await self.redis.aclose()
