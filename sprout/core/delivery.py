"""The job: answer one recorded message, sending each chunk as soon as it is ready.

Chunks are written to the store before they are sent and marked after, and the answer is
recorded as complete when generation ends, so a job interrupted at any point can be resumed:
a complete answer sends only its unsent chunks, an incomplete one asks the model to continue
from what the user already has.

Two writes are folded where that keeps those guarantees: a chunk the sender is idle waiting
for is recorded straight as `sending` (the send follows at once), and chunks sent together are
marked in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from sprout.core.bot import Bot, Outcome
from sprout.core.chunking import Chunk
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import BLOCK_SEPARATOR, ChannelSpec, Incoming
from sprout.core.metrics import JOB_SECONDS, JOBS_RUNNING, SEND_FAILURES
from sprout.core.oldest_first import working_for
from sprout.core.ports import (
    LOOKUP_CLOCK_SKEW,
    SOLE_PROCESS,
    Lease,
    LeaseLostError,
    MediaFetcher,
    Sender,
    SendError,
    SentLookup,
)
from sprout.core.store import Job, Store, StoredChunk
from sprout.core.tables import ChunkState
from sprout.core.tasks import TaskSet

log = get_logger(__name__)

HOLD_SEQ = 0  # the hold message, when sent, always comes first
JOB_ATTEMPTS = 3
ERASED_KIND = "forgotten"  # the answer to "forget me": the user's rows go once it is sent


@dataclass(frozen=True)
class Channel:
    spec: ChannelSpec
    sender: Sender
    # Channels that can say what they delivered settle a send cut off by a crash exactly;
    # others resend it (a possible duplicate rather than a loss).
    lookup: SentLookup | None = None
    # Whether a slow answer first gets the hold message (a channel with its own "typing…"
    # indicator does not need one).
    hold: bool = True
    # Shown the answer's text word by word as it is written (a live view such as the web
    # page); chunks are still sent and recorded as usual.
    preview: Callable[[Incoming, str], None] | None = None
    # Send every chunk that is ready in one call (a message that grows by edits, paced by the
    # channel, shows them in one edit instead of queueing one edit per chunk).
    coalesce: bool = False
    # Fetches what users attach, so voice notes can be listened to.
    media: MediaFetcher | None = None


def _take_ready(
    queue: asyncio.Queue[_Ready | None],
    batch: list[_Ready],
    spec: ChannelSpec,
) -> tuple[_Ready | None, bool]:
    """Move the chunks already waiting into `batch` while they fit in one message together.
    Returns the first one that did not fit (to send next) and whether the answer ended."""
    joined = BLOCK_SEPARATOR.join(ready.chunk.text for ready in batch)
    while not queue.empty():
        item = queue.get_nowait()
        if item is _DONE:
            return None, True
        candidate = joined + BLOCK_SEPARATOR + item.chunk.text
        if spec.max_len is not None and spec.measure(candidate) > spec.max_len:
            return item, False
        batch.append(item)
        joined = candidate
    return None, False


_DONE = None


class Delivery:
    def __init__(
        self,
        store: Store,
        bot: Bot,
        channels: Mapping[str, Channel],
        hold_after_s: float = 5.0,
    ) -> None:
        self._store = store
        self._bot = bot
        self._channels = channels
        self._hold_after_s = hold_after_s

    async def run(self, inbound_id: int, lease: Lease = SOLE_PROCESS) -> None:
        """Answer a recorded message. Under a `lease` (the user's jobs may move between
        processes), every send and every write that decides what is sent first checks it is
        still held, so a process that stalled past its lease stops before it can repeat what
        its successor sends (the outcome of a send already made is still recorded)."""
        job = await self._store.load_job(inbound_id)
        if job is None or job.done:
            return
        channel = self._channels.get(job.incoming.channel)
        if channel is None:
            log.error("channel_not_running", channel=job.incoming.channel, inbound=inbound_id)
            return
        with JOBS_RUNNING.track_inprogress(), working_for(inbound_id):
            await self._run(job, channel, lease)
        waited = datetime.now(UTC) - job.incoming.received_at
        JOB_SECONDS.labels(job.incoming.channel).observe(waited.total_seconds())

    async def _run(self, job: Job, channel: Channel, lease: Lease) -> None:
        inbound_id = job.inbound_id
        lease.check()
        answer_id = job.answer_id or await self._store.start_answer(inbound_id)
        log.info("job_started", inbound=inbound_id, user=user_ref(job.incoming.user_id))
        job = await self._settle_interrupted_sends(job, channel, lease)
        if job.answer_complete:
            await _Sending(self._store, channel, job.incoming, lease).resend(job.chunks)
            erase = job.answer_kind == ERASED_KIND
        else:
            erase = (await self._generate_and_send(job, answer_id, channel, lease)).erase_user
        lease.check()
        if erase:
            # The confirmation is out: now the message that asked goes too, with its answer.
            await self._store.erase_user(job.incoming.user_id)
        else:
            await self._store.finish(inbound_id)
        log.info("job_done", inbound=inbound_id, user=user_ref(job.incoming.user_id))

    async def _settle_interrupted_sends(self, job: Job, channel: Channel, lease: Lease) -> Job:
        """A chunk left `sending` by a crash may or may not have reached the user."""
        interrupted = [c for c in job.chunks if c.state is ChunkState.SENDING]
        for chunk in interrupted:
            found = None
            if channel.lookup is not None:
                since = chunk.created_at - LOOKUP_CLOCK_SKEW
                found = await channel.lookup.find_sent(job.incoming, chunk.body, since)
            state = ChunkState.SENT if found else ChunkState.PENDING
            lease.check()
            await self._store.mark_chunk(chunk.id, state, provider_id=found)
        if not interrupted:
            return job
        settled = await self._store.load_job(job.inbound_id)
        assert settled is not None
        return settled

    async def _generate_and_send(
        self, job: Job, answer_id: int, channel: Channel, lease: Lease
    ) -> Outcome:
        if any(c.state is ChunkState.PENDING for c in job.chunks):
            lease.check()
            await self._store.drop_unsent(answer_id)
        earlier = [c for c in job.chunks if c.state is not ChunkState.PENDING]
        already_sent = BLOCK_SEPARATOR.join(c.source for c in earlier if not c.is_hold)
        bodies = [c.body for c in earlier if not c.is_hold]
        next_seq = max((c.seq for c in earlier), default=HOLD_SEQ) + 1
        queue: asyncio.Queue[_Ready | None] = asyncio.Queue()
        outcome = Outcome()
        idle = _Idle()

        async def produce() -> None:
            seq = next_seq
            try:
                preview = channel.preview
                on_text = partial(preview, job.incoming) if preview is not None else None
                chunks = self._bot.chunks(
                    job.incoming,
                    channel.spec,
                    job.inbound_id,
                    already_sent,
                    outcome,
                    on_text,
                    fetch_media=channel.media,
                )
                async for chunk in chunks:
                    # The sender is waiting for exactly this chunk: it goes out at once.
                    at_once = idle.waiting and queue.empty()
                    state = ChunkState.SENDING if at_once else ChunkState.PENDING
                    lease.check()
                    chunk_id = await self._store.add_chunk(
                        answer_id, seq, chunk.text, chunk.source, state=state
                    )
                    bodies.append(chunk.text)
                    seq += 1
                    await queue.put(_Ready(chunk_id, chunk, at_once))
                lease.check()
                await self._store.complete_answer(
                    answer_id, BLOCK_SEPARATOR.join(bodies), outcome.kind
                )
            finally:
                await queue.put(_DONE)

        producer = asyncio.create_task(produce())
        sending = _Sending(self._store, channel, job.incoming, lease)
        hold_due = channel.hold and not earlier
        carry: _Ready | None = None
        finished = False
        try:
            while not finished:
                item: _Ready | None
                if carry is not None:
                    item, carry = carry, None
                elif hold_due:
                    item = await self._first_or_hold(queue, sending, answer_id, outcome, idle)
                else:
                    with idle.now():
                        item = await queue.get()
                hold_due = False
                if item is _DONE:
                    break
                batch = [item]
                if channel.coalesce:
                    carry, finished = _take_ready(queue, batch, channel.spec)
                await sending.send(
                    [ready.chunk_id for ready in batch],
                    BLOCK_SEPARATOR.join(ready.chunk.text for ready in batch),
                    already_sending=[ready.chunk_id for ready in batch if ready.sending],
                )
            await producer  # surfaces a producer crash instead of calling the job done
        finally:
            producer.cancel()
        return outcome

    async def _first_or_hold(
        self,
        queue: asyncio.Queue[_Ready | None],
        sending: _Sending,
        answer_id: int,
        outcome: Outcome,
        idle: _Idle,
    ) -> _Ready | None:
        with idle.now():
            try:
                return await asyncio.wait_for(queue.get(), self._hold_after_s)
            except TimeoutError:
                pass
        text = self._bot.prompts.text("hold", outcome.language)
        sending.lease.check()
        hold_id = await self._store.add_chunk(
            answer_id, HOLD_SEQ, text, is_hold=True, state=ChunkState.SENDING
        )
        await sending.send([hold_id], text, already_sending=[hold_id])
        with idle.now():
            return await queue.get()


@dataclass(frozen=True)
class _Ready:
    """A generated chunk, recorded and waiting to be sent."""

    chunk_id: int
    chunk: Chunk
    sending: bool  # recorded straight as `sending`


class _Idle:
    """Whether the sending loop is waiting for the next chunk (one recorded now is sent at
    once, so it can be recorded as `sending` straight away: one write fewer)."""

    def __init__(self) -> None:
        self.waiting = False

    @contextlib.contextmanager
    def now(self) -> Iterator[None]:
        self.waiting = True
        try:
            yield
        finally:
            self.waiting = False


class _Sending:
    """Sends one job's chunks in order; after a permanent failure the rest is not attempted."""

    def __init__(self, store: Store, channel: Channel, incoming: Incoming, lease: Lease) -> None:
        self._store = store
        self._channel = channel
        self._incoming = incoming
        self.lease = lease
        self._blocked: str | None = None

    async def send(
        self, chunk_ids: list[int], text: str, already_sending: Collection[int] = ()
    ) -> None:
        """Send `text` (one chunk, or several ready ones joined) and record the outcome;
        `already_sending`: those of the chunks recorded as `sending` already."""
        if self._blocked is not None:
            await self._store.mark_chunks(chunk_ids, ChunkState.FAILED, error=self._blocked)
            return
        to_mark = [chunk_id for chunk_id in chunk_ids if chunk_id not in already_sending]
        if to_mark:
            self.lease.check()
            await self._store.mark_chunks(to_mark, ChunkState.SENDING)
        self.lease.check()
        try:
            provider_id = await self._channel.sender.send(self._incoming, text)
        except SendError as error:
            reason = str(error)[:200]
            log.warning(
                "send_failed",
                user=user_ref(self._incoming.user_id),
                permanent=error.permanent,
                error=reason,
            )
            self._blocked = reason
            SEND_FAILURES.labels(self._incoming.channel, str(error.permanent).lower()).inc()
            await self._store.mark_chunks(chunk_ids, ChunkState.FAILED, error=reason)
            return
        await self._store.mark_chunks(chunk_ids, ChunkState.SENT, provider_id=provider_id)

    async def resend(self, chunks: tuple[StoredChunk, ...]) -> None:
        for chunk in chunks:
            if chunk.state is ChunkState.PENDING:
                await self.send([chunk.id], chunk.body)


async def run_with_retries(
    run: Callable[[int], Awaitable[None]], inbound_id: int, user_id: str, retry_wait_s: float
) -> None:
    """Run a job, again after a passing fault (a database hiccup must not leave the user in
    silence): a job resumes from what it recorded, so running it again is safe. A job that
    keeps failing stays unfinished in the store, for the next start-up or sweep. LeaseLostError
    is raised: the job is someone else's now. A cancelled job (the process is stopping) is not
    run again: tenacity would retry a CancelledError like any other exception, and the stop
    would then wait for a whole new run (model call included) that nobody cancels."""
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(JOB_ATTEMPTS),
            wait=wait_exponential(multiplier=retry_wait_s),
            retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(LeaseLostError),
            reraise=True,
        ):
            with attempt:
                await run(inbound_id)
    except LeaseLostError:
        raise
    except Exception:
        log.exception("job_crashed", inbound=inbound_id, user=user_ref(user_id))


class InProcessDispatcher:
    """Runs jobs on this event loop: one at a time per user, in arrival order, users in parallel.

    A task exists only while a user has work queued, so idle users cost nothing.
    """

    def __init__(self, run: Callable[[int], Awaitable[None]], retry_wait_s: float = 1.0) -> None:
        self._run = run
        self._retry_wait_s = retry_wait_s
        self._queues: dict[str, asyncio.Queue[int]] = {}
        self._tasks = TaskSet("jobs")

    async def submit(self, user_id: str, inbound_id: int) -> None:
        self.dispatch(user_id, inbound_id)

    async def recover(self, store: Store, channels: frozenset[str]) -> None:
        """Resume whatever the last run left unfinished, in the order it arrived."""
        pending = await store.unfinished(channels=channels)
        for inbound_id, user_id in pending:
            self.dispatch(user_id, inbound_id)
        if pending:
            log.info("recovering", jobs=len(pending))

    def dispatch(self, user_id: str, inbound_id: int) -> None:
        queue = self._queues.get(user_id)
        if queue is None:
            if self._tasks.closing:
                # The message is recorded: the next start-up answers it.
                log.info("not_dispatched", inbound=inbound_id, reason="stopping")
                return
            queue = self._queues[user_id] = asyncio.Queue()
            self._tasks.spawn(self._drain(user_id, queue), name=f"jobs-{user_ref(user_id)}")
        queue.put_nowait(inbound_id)

    async def _drain(self, user_id: str, queue: asyncio.Queue[int]) -> None:
        try:
            while not queue.empty():
                inbound_id = queue.get_nowait()
                await run_with_retries(self._run, inbound_id, user_id, self._retry_wait_s)
        finally:
            del self._queues[user_id]

    @property
    def busy(self) -> int:
        return len(self._tasks)

    async def close(self, grace_s: float) -> None:
        """Let running jobs finish for up to `grace_s` seconds (a send cut off in flight may be
        repeated after restart), then cancel them: they resume at the next start-up from what
        they recorded."""
        await self._tasks.close(grace_s)
