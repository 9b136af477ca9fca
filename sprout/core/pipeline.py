"""One answer's way out: chunks are recorded as the bot yields them and sent, in order, while
the next ones are written.

Two tasks meet at a `ChunkPipe`: the recorder puts each chunk in once it is stored, and
closes the pipe when the answer is complete; the sender takes what is ready (several at once
on a channel that coalesces) and sends it, after the hold message when nothing was ready in
time. Two writes are folded where that keeps the guarantees: a chunk the sender is idle
waiting for is recorded straight as `sending` (the send follows at once), and chunks sent
together are marked in one transaction.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from sprout.core.buttons import Buttons
from sprout.core.chunking import Chunk, joined
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import BLOCK_SEPARATOR, ChannelSpec, Incoming
from sprout.core.metrics import SEND_FAILURES
from sprout.core.ports import ButtonSender, Lease, Sender, SendError
from sprout.core.store import Store, StoredChunk
from sprout.core.tables import ChunkState

log = get_logger(__name__)


@dataclass(frozen=True)
class Ready:
    """A generated chunk, recorded and waiting to be sent."""

    chunk_id: int
    chunk: Chunk
    sending: bool  # recorded straight as `sending`


class ChunkPipe:
    """Recorded chunks waiting to be sent, in order; closed once no more will come."""

    def __init__(self) -> None:
        self._ready: deque[Ready] = deque()
        self._changed = asyncio.Event()
        self._closed = False
        self.waiting = False  # the sender is idle, waiting for the next chunk
        self.language: str | None = None  # the answer's, once the bot has decided it
        # Whether the answer may end with buttons, once decided (and then which, once complete).
        self.may_offer = False
        self.buttons: Buttons | None = None
        # Set once the bot decided how to answer: True when the model writes the answer.
        self.decided: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    @property
    def empty(self) -> bool:
        return not self._ready

    def put(self, ready: Ready) -> None:
        self._ready.append(ready)
        self._changed.set()

    def decide(self, by_model: bool) -> None:
        if not self.decided.done():
            self.decided.set_result(by_model)

    def close(self) -> None:
        self.decide(False)
        self._closed = True
        self._changed.set()

    @property
    def finished(self) -> bool:
        """No more chunks will come and every chunk was taken."""
        return self._closed and not self._ready

    async def wait(self) -> None:
        """Until a chunk is ready or the answer is complete."""
        self.waiting = True
        try:
            while not self._ready and not self._closed:
                self._changed.clear()
                await self._changed.wait()
        finally:
            self.waiting = False

    def take(self, together: ChannelSpec | None = None) -> list[Ready]:
        """The next ready chunk (none once the answer is complete and all was taken); with
        `together`, also the ones ready after it that fit with it in one message."""
        batch: list[Ready] = []
        while self._ready and (not batch or _fits([*batch, self._ready[0]], together)):
            batch.append(self._ready.popleft())
        return batch


def _fits(batch: Sequence[Ready], spec: ChannelSpec | None) -> bool:
    if spec is None:
        return False
    text = joined(ready.chunk for ready in batch)
    return spec.max_len is None or spec.measure(text) <= spec.max_len


class Way(Protocol):
    """How a channel takes messages (see `delivery.Channel`)."""

    @property
    def sender(self) -> Sender: ...
    @property
    def buttons(self) -> ButtonSender | None: ...


class ChunkSender:
    """Sends one job's chunks in order and records each outcome; after a permanent failure
    the rest is not attempted."""

    def __init__(self, store: Store, channel: Way, incoming: Incoming, lease: Lease) -> None:
        self._store = store
        self._sender = channel.sender
        self._button_sender = channel.buttons
        self._incoming = incoming
        self.lease = lease
        self._blocked: str | None = None

    async def send_ready(self, batch: Sequence[Ready], buttons: Buttons | None = None) -> None:
        ids = [ready.chunk_id for ready in batch]
        text = joined(ready.chunk for ready in batch)
        sending = [r.chunk_id for r in batch if r.sending]
        await self.send(ids, text, sending, batch[0].chunk.joint, buttons)

    async def send(
        self,
        chunk_ids: list[int],
        text: str,
        already_sending: Collection[int] = (),
        joint: str = BLOCK_SEPARATOR,
        buttons: Buttons | None = None,
    ) -> None:
        """Send `text` (one chunk, or several ready ones joined) and record the outcome;
        `already_sending`: those of the chunks recorded as `sending` already; `joint`: what
        joins the first of them to the chunk before (see `Sender`); `buttons`: under it, the
        answer's last message."""
        if self._blocked is not None:
            await self._store.mark_chunks(chunk_ids, ChunkState.FAILED, error=self._blocked)
            return
        to_mark = [chunk_id for chunk_id in chunk_ids if chunk_id not in already_sending]
        if to_mark:
            self.lease.check()
            await self._store.mark_chunks(to_mark, ChunkState.SENDING)
        self.lease.check()
        try:
            if buttons is not None and self._button_sender is not None:
                provider_id = await self._button_sender.send_with_buttons(
                    self._incoming, text, buttons, joint
                )
            else:
                provider_id = await self._sender.send(self._incoming, text, joint)
        except SendError as error:
            await self._failed(chunk_ids, error)
            return
        await self._store.mark_chunks(chunk_ids, ChunkState.SENT, provider_id=provider_id)

    async def send_buttons(self, buttons: Buttons) -> None:
        """The buttons on their own, after an answer whose last message already went (a
        courtesy: a failure is logged, never retried)."""
        if self._blocked is not None or self._button_sender is None:
            return
        self.lease.check()
        try:
            await self._button_sender.send_buttons(self._incoming, buttons)
        except SendError as error:
            log.warning("buttons_failed", user=user_ref(self._incoming.user_id), error=str(error))

    async def _failed(self, chunk_ids: list[int], error: SendError) -> None:
        reason = str(error)[:200]
        user = user_ref(self._incoming.user_id)
        log.warning("send_failed", user=user, permanent=error.permanent, error=reason)
        self._blocked = reason
        SEND_FAILURES.labels(self._incoming.channel, str(error.permanent).lower()).inc()
        await self._store.mark_chunks(chunk_ids, ChunkState.FAILED, error=reason)

    async def resend(self, chunks: Sequence[StoredChunk], buttons: Buttons | None = None) -> None:
        """Send a complete answer's unsent chunks, the last with its `buttons`."""
        last = max((c.seq for c in chunks if not c.is_hold), default=None)
        for chunk in chunks:
            if chunk.state is ChunkState.PENDING:
                under = buttons if chunk.seq == last else None
                await self.send([chunk.id], chunk.body, buttons=under)
