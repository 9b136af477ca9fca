"""The job: answer one recorded message, sending each chunk as soon as it is ready.

Chunks are written to the store before they are sent and marked after, and the answer is
recorded as complete when generation ends, so a job interrupted at any point can be resumed:
a complete answer sends only its unsent chunks, an incomplete one asks the model to continue
from what the user already has. How chunks travel from the bot to the channel while the rest
is written is in pipeline.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
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

from sprout.core.assigning import Assigner, Behaviour
from sprout.core.bot import Bot
from sprout.core.buttons import Buttons
from sprout.core.indicating import KeepTyping
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import BLOCK_SEPARATOR, ChannelSpec, Incoming
from sprout.core.metrics import JOB_SECONDS, JOBS_RUNNING
from sprout.core.oldest_first import working_for
from sprout.core.pipeline import ChunkPipe, ChunkSender, Ready
from sprout.core.ports import (
    LOOKUP_CLOCK_SKEW,
    SOLE_PROCESS,
    ButtonSender,
    Indicator,
    Lease,
    LeaseLostError,
    MediaFetcher,
    Sender,
    SentLookup,
)
from sprout.core.privacy import Forgetting
from sprout.core.store import HOLD_SEQ, Job, Store, StoredChunk
from sprout.core.tables import ChunkState
from sprout.core.tasks import TaskSet
from sprout.core.turn import Ask

log = get_logger(__name__)

JOB_ATTEMPTS = 3
# How long a message waits to learn whether it is the answer's last (then it carries the
# buttons): an answer's last message comes as the model ends, so the end follows at once;
# one written mid-answer goes after this, and the buttons come on their own at the end.
LAST_MESSAGE_WAIT_S = 0.1


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
    # Sends an answer's last message with tap-to-reply buttons (None: the channel has none).
    buttons: ButtonSender | None = None
    # Shows the buttons under the answer whichever message brings them (the web page): no
    # message then waits to learn whether it is the last, and the buttons may come after it.
    buttons_apart: bool = False
    # Shows "typing…" while the model writes; on a channel with hold messages, the hold is
    # then sent only if nothing went out by the time the indication ends.
    indicator: Indicator | None = None


class Delivery:
    def __init__(
        self,
        store: Store,
        bot: Bot,
        channels: Mapping[str, Channel],
        hold_after_s: float = 5.0,
        assigner: Assigner | None = None,
    ) -> None:
        self._store = store
        self._bot = bot
        self._channels = channels
        self._hold_after_s = hold_after_s
        # Looks up each job's experiment arms; None: no experiments, the settings as they are.
        self._assigner = assigner
        self._forgetting = Forgetting(store)

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
        inbound_id, user = job.inbound_id, job.incoming.user_id
        lease.check()
        answer_id = job.answer_id or await self._store.start_answer(inbound_id)
        log.info("job_started", inbound=inbound_id, user=user_ref(user))
        job = await self._settle_interrupted_sends(job, channel, lease)
        behaviour = await self._behaviour(job.incoming)
        run = _Run(job, channel, lease, answer_id, behaviour)
        if job.answer_complete:
            sender = ChunkSender(self._store, channel, job.incoming, lease)
            await sender.resend(job.chunks, await self._buttons_on_resume(job, channel))
            kind = job.answer_kind
        else:
            kind = await self._generate_and_send(run)
        lease.check()
        if not await self._forgetting.after_answer(user, kind):
            await self._store.finish(inbound_id)
        log.info("job_done", inbound=inbound_id, user=user_ref(user))

    async def _behaviour(self, incoming: Incoming) -> Behaviour | None:
        return None if self._assigner is None else await self._assigner.behaviour(incoming)

    async def _buttons_on_resume(self, job: Job, channel: Channel) -> Buttons | None:
        """The buttons under a complete answer whose last message is still to be sent."""
        if channel.buttons is None or not any(c.state is ChunkState.PENDING for c in job.chunks):
            return None
        state = await self._store.user_state(job.incoming.user_id, job.inbound_id, frozenset())
        language = state.profile.get("language")
        return self._bot.buttons(job.answer_kind, language if isinstance(language, str) else None)

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

    async def _generate_and_send(self, run: _Run) -> str | None:
        """Generate the answer (or the rest of it), sending it as it is written; its kind."""
        if any(c.state is ChunkState.PENDING for c in run.job.chunks):
            run.lease.check()
            await self._store.drop_unsent(run.answer_id)
        earlier = [c for c in run.job.chunks if c.state is not ChunkState.PENDING]
        pipe = ChunkPipe()
        recorder = asyncio.create_task(self._record(run, earlier, pipe))
        try:
            await self._send_all(run, pipe, hold=run.channel.hold and not earlier)
            return await recorder  # surfaces a recorder crash instead of calling the job done
        finally:
            if not recorder.done():  # the sender failed: the model stream closes before we go
                recorder.cancel()
                await asyncio.wait([recorder])

    async def _record(self, run: _Run, earlier: list[StoredChunk], pipe: ChunkPipe) -> str | None:
        """Record each chunk as the bot yields it, then the whole answer; its kind."""
        try:
            answer = await self._bot.begin(_ask(run, earlier))
            pipe.language = answer.language
            pipe.may_offer = answer.may_offer and run.channel.buttons is not None
            pipe.decide(answer.by_model)
            shown = BLOCK_SEPARATOR.join(c.body for c in earlier if not c.is_hold)
            seq = max((c.seq for c in earlier), default=HOLD_SEQ) + 1
            async for chunk in answer:
                # The sender is waiting for exactly this chunk: it goes out at once.
                at_once = pipe.waiting and pipe.empty
                state = ChunkState.SENDING if at_once else ChunkState.PENDING
                run.lease.check()
                chunk_id = await self._store.add_chunk(
                    run.answer_id, seq, chunk.text, chunk.source, state=state
                )
                shown += (chunk.joint if shown else "") + chunk.text
                seq += 1
                pipe.put(Ready(chunk_id, chunk, at_once))
            if pipe.may_offer:
                pipe.buttons = self._bot.buttons(answer.offer, answer.language)
            pipe.close()  # nothing more comes: the last message may go now, with its buttons
            run.lease.check()
            await self._store.complete_answer(run.answer_id, shown, answer.kind)
            return answer.kind
        finally:
            pipe.close()

    async def _send_all(self, run: _Run, pipe: ChunkPipe, hold: bool) -> None:
        sender = ChunkSender(self._store, run.channel, run.job.incoming, run.lease)
        shows_typing = run.behaviour.typing_indicator if run.behaviour else True
        indicator = run.channel.indicator if shows_typing and not run.job.chunks else None
        typing = KeepTyping(indicator, run.job.incoming, pipe) if indicator else None
        shown = asyncio.create_task(typing.run()) if typing else None
        try:
            if hold:
                await self._hold_if_slow(run, pipe, sender, typing)
            together = run.channel.spec if run.channel.coalesce else None
            offered = False
            while True:
                await pipe.wait()
                batch = pipe.take(together)
                if not batch:
                    break
                if pipe.may_offer and not run.channel.buttons_apart:
                    # Is it the last message? It then carries the buttons.
                    await _briefly(pipe.wait(), LAST_MESSAGE_WAIT_S)
                if shown is not None:  # the first message ends "typing…"
                    shown.cancel()
                offered = pipe.finished and pipe.buttons is not None
                await sender.send_ready(batch, pipe.buttons if offered else None)
            if pipe.buttons is not None and not offered:
                await sender.send_buttons(pipe.buttons)
        finally:
            if shown is not None and not shown.done():
                shown.cancel()
                await asyncio.wait([shown])

    async def _hold_if_slow(
        self, run: _Run, pipe: ChunkPipe, sender: ChunkSender, typing: KeepTyping | None
    ) -> None:
        """The hold message, when nothing is ready to send `hold_after_s` into the answer,
        unless the user sees "typing…": then only if nothing is ready when it ends."""
        try:
            hold_after_s = run.behaviour.hold_after_s if run.behaviour else self._hold_after_s
            await asyncio.wait_for(pipe.wait(), hold_after_s)
            return
        except TimeoutError:
            pass
        until = typing.shown_until if typing is not None else None
        if until is not None:
            try:
                await asyncio.wait_for(pipe.wait(), max(0.0, until - time.monotonic()))
                return
            except TimeoutError:
                pass
        text = self._bot.prompts.text("hold", pipe.language)
        run.lease.check()
        hold_id = await self._store.add_hold(run.answer_id, text)
        await sender.send([hold_id], text, already_sending=[hold_id])


@dataclass(frozen=True)
class _Run:
    """One job being answered on one channel, under one lease."""

    job: Job
    channel: Channel
    lease: Lease
    answer_id: int
    behaviour: Behaviour | None  # None: no experiments


async def _briefly(waiting: Awaitable[None], at_most_s: float) -> None:
    """Wait for `waiting`, but no longer than `at_most_s`."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(waiting, at_most_s)


def _ask(run: _Run, earlier: list[StoredChunk]) -> Ask:
    """What the bot is asked: the message, and what the user already has of its answer."""
    incoming, preview = run.job.incoming, run.channel.preview
    return Ask(
        incoming,
        run.channel.spec,
        run.job.inbound_id,
        already_sent=BLOCK_SEPARATOR.join(c.source for c in earlier if not c.is_hold),
        messages_sent=sum(not c.is_hold for c in earlier),
        on_text=partial(preview, incoming) if preview is not None else None,
        media=run.channel.media,
        behaviour=run.behaviour,
    )


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
