"""The web page as a channel: each chunk, the live text and the buttons under an answer,
handed to the browser session that asked (thread-safe: filled on the core's loop, read by the
Streamlit script)."""

from __future__ import annotations

import queue
import time
from typing import NamedTuple
from uuid import uuid4

from sprout.core.buttons import Buttons
from sprout.core.messages import BLOCK_SEPARATOR, Incoming


class Item(NamedTuple):
    """What reached the page, and when (monotonic): `what` is "text" (live text to show),
    "chunk" (a chunk as the channel sent it, for the timeline), "buttons" (the tap-to-reply
    buttons under the answer) or "end" (the answer is done)."""

    at: float
    what: str
    text: str = ""
    buttons: Buttons | None = None


class QueueSender:
    """The web channel's sender, and its button sender: puts what the answer shows, with the
    time, on the queue of the browser session that asked."""

    def __init__(self) -> None:
        self._queues: dict[str, queue.Queue[Item]] = {}

    def open(self, user_id: str) -> queue.Queue[Item]:
        self._queues[user_id] = queue.Queue()
        return self._queues[user_id]

    def end(self, user_id: str) -> None:
        target = self._queues.pop(user_id, None)
        if target is not None:
            target.put(Item(time.monotonic(), "end"))

    def preview(self, incoming: Incoming, text: str) -> None:
        self._put(incoming, Item(time.monotonic(), "text", text))

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        self._put(incoming, Item(time.monotonic(), "chunk", text))
        return uuid4().hex

    async def send_with_buttons(
        self, incoming: Incoming, text: str, buttons: Buttons, joint: str = BLOCK_SEPARATOR
    ) -> str:
        sent = await self.send(incoming, text, joint)
        await self.send_buttons(incoming, buttons)
        return sent

    async def send_buttons(self, incoming: Incoming, buttons: Buttons) -> None:
        self._put(incoming, Item(time.monotonic(), "buttons", buttons=buttons))

    def _put(self, incoming: Incoming, item: Item) -> None:
        target = self._queues.get(incoming.user_id)
        if target is not None:
            target.put(item)
