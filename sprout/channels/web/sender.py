"""The web page as a channel: each chunk, and the live text, handed to the browser session
that asked (thread-safe: filled on the core's loop, read by the Streamlit script)."""

from __future__ import annotations

import queue
import time
from uuid import uuid4

from sprout.core.messages import BLOCK_SEPARATOR, Incoming

# (monotonic time, what, text): "text" is live text to show, "chunk" a chunk as the channel
# sent it (for the timeline), "end" the answer is done.
Item = tuple[float, str, str]


class QueueSender:
    """The web channel's sender: puts the live text and each chunk, with the time, on the queue
    of the browser session that asked (thread-safe: filled on the loop, read by the script)."""

    def __init__(self) -> None:
        self._queues: dict[str, queue.Queue[Item]] = {}

    def open(self, user_id: str) -> queue.Queue[Item]:
        self._queues[user_id] = queue.Queue()
        return self._queues[user_id]

    def end(self, user_id: str) -> None:
        target = self._queues.pop(user_id, None)
        if target is not None:
            target.put((time.monotonic(), "end", ""))

    def preview(self, incoming: Incoming, text: str) -> None:
        self._put(incoming, "text", text)

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        self._put(incoming, "chunk", text)
        return uuid4().hex

    def _put(self, incoming: Incoming, what: str, text: str) -> None:
        target = self._queues.get(incoming.user_id)
        if target is not None:
            target.put((time.monotonic(), what, text))
