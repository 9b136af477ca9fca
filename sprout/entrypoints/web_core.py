"""The page's link to the core, without Streamlit: one background event loop that owns the
Store, model, Bot and the real Delivery, and a sender that hands each chunk to the browser
session that asked.

Streamlit runs each script run on a thread with no event loop, and the async clients (SQLAlchemy,
openai) belong to the loop they were made on, so everything async runs on this one loop and the
script waits on futures (`asyncio.run_coroutine_threadsafe`).
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import uuid4

from sprout.bootstrap import open_core
from sprout.channels.web.compare import Arrival, Rating, WebTurn
from sprout.channels.web.sender import QueueSender
from sprout.core.delivery import Channel
from sprout.core.logs import use_pseudonym_key
from sprout.core.messages import Incoming
from sprout.core.profile import Profile
from sprout.core.settings import Settings
from sprout.core.specs import WEB_STREAMING

T = TypeVar("T")
CHANNEL = "web"
ANSWER_TIMEOUT_S = 300.0  # a guard against waiting forever, far beyond the model's own retries


class WebCore:
    """The core objects for every browser session of one page server (made once, cached)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The page records pseudonyms (safety events, experiment arms) as the servers do.
        use_pseudonym_key(settings.pseudonym_key)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sprout-web", daemon=True
        )
        self._thread.start()
        self.sender = QueueSender()
        self._stack = AsyncExitStack()
        self.core = self.call(self._stack.enter_async_context(open_core(settings)))
        # The page shows a spinner, then the text word by word as it is written.
        # Buttons under an answer, as on the messaging channels.
        channel = Channel(
            WEB_STREAMING,
            self.sender,
            hold=False,
            preview=self.sender.preview,
            buttons=self.sender,
            buttons_apart=True,  # no chunk waits for them: its time is what the page measures
        )
        self._delivery = self.core.delivery({CHANNEL: channel})
        self.store, self.model, self.bot = self.core.store, self.core.model, self.core.bot

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result(ANSWER_TIMEOUT_S)

    def ask(self, user_id: str, text: str, payload: str = "") -> Answer:
        """Answer `text`; with a `payload`, a tapped button (the text is its label), which
        the core routes as it routes a tap on WhatsApp or Telegram."""
        return Answer(self, user_id, text, payload)

    def ratings(self, user_id: str) -> dict[str, list[Rating]]:
        """The user's 👍/👎 and comments, by the id of the message whose answer they rate."""
        rated: dict[str, list[Rating]] = {}
        for message_id, rating, comment in self.call(self.store.ratings(user_id)):
            rated.setdefault(message_id, []).append(Rating(rating, comment))
        return rated

    async def _answer(self, incoming: Incoming) -> None:
        try:
            inbound_id = await self.store.record_inbound(incoming)
            if inbound_id is not None:
                await self._delivery.run(inbound_id)
        finally:
            self.sender.end(incoming.user_id)

    def profile(self, user_id: str) -> Profile:
        state = self.call(self.store.user_state(user_id, sys.maxsize, frozenset()))
        try:
            return Profile.model_validate(state.profile)
        except ValueError:
            return Profile()

    def no_research(self, user_id: str) -> bool:
        """Whether the user said "no research" (and is left out of exports)."""
        return self.call(self.store.user_state(user_id, sys.maxsize, frozenset())).no_research

    def save_profile(self, user_id: str, profile: Profile) -> None:
        self.call(self.store.save_profile(user_id, profile.model_dump()))

    def hold_text(self, language: str | None) -> str:
        return self.bot.prompts.text("hold", language)

    def close(self) -> None:
        self.call(self._stack.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class Answer:
    """One question's answer as the page streams it: iterate for the text (what
    `st.write_stream` reads); `turn` holds the measured timeline once iteration ends."""

    def __init__(self, core: WebCore, user_id: str, text: str, payload: str = "") -> None:
        message_id = uuid4().hex
        self.turn = WebTurn(text, datetime.now(UTC), message_id=message_id)
        self._started = time.monotonic()
        self._queue = core.sender.open(user_id)
        incoming = Incoming(
            channel=CHANNEL, user_id=user_id, text=text, message_id=message_id, payload=payload
        )
        self._job = core.submit(core._answer(incoming))

    def __iter__(self) -> Iterator[str]:
        while True:
            try:
                item = self._queue.get(timeout=ANSWER_TIMEOUT_S)
            except queue.Empty:
                raise TimeoutError("no answer from the core") from None
            elapsed = item.at - self._started
            if item.what == "end":
                self.turn.complete_s = elapsed
                break
            if item.what == "chunk":
                self.turn.arrivals.append(Arrival(elapsed, item.text))
                continue
            if item.what == "buttons":
                self.turn.buttons = item.buttons
                continue
            if self.turn.first_text_s is None:
                self.turn.first_text_s = elapsed
            yield item.text
        self._job.result(ANSWER_TIMEOUT_S)  # surfaces a crash of the job
