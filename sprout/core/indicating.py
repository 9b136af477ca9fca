""" "typing…" while an answer is written: shown when the model starts a message's answer,
kept up (on a channel whose indication fades) until the first message goes out."""

from __future__ import annotations

import asyncio
import time

from sprout.core.messages import Incoming
from sprout.core.pipeline import ChunkPipe
from sprout.core.ports import Indicator


class KeepTyping:
    def __init__(self, indicator: Indicator, incoming: Incoming, pipe: ChunkPipe) -> None:
        self._indicator = indicator
        self._incoming = incoming
        self._pipe = pipe
        self._shown_at: float | None = None

    @property
    def shown_until(self) -> float | None:
        """Until when (monotonic) the user sees "typing…" as far as we know; None when it
        was never shown (not a model answer, the channel refused, not yet)."""
        if self._shown_at is None:
            return None
        return self._shown_at + self._indicator.lasts_s

    async def run(self) -> None:
        """Show it once the bot decided the model answers; renew it while it lasts. Cancel
        this when the first message goes out."""
        if not await asyncio.shield(self._pipe.decided):
            return
        while True:
            if await self._indicator.show(self._incoming):
                self._shown_at = time.monotonic()
            if not self._indicator.renew:
                return
            await asyncio.sleep(self._indicator.lasts_s)
