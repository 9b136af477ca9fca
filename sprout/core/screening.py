"""The two screening stages: the request (before anything of the answer is shown) and the
answer (each chunk before it leaves).

Today the request is screened by the moderation endpoint, asked beside the model's first
tokens rather than before the request, and the answer screen holds every chunk until that
verdict is in; a flagged request gets the safe text and nothing of the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from sprout.core.chunking import Chunk
from sprout.core.llm import Moderator
from sprout.core.metrics import REQUESTS_FLAGGED
from sprout.core.turn import Turn

REFUSED_KIND = "unsafe"  # the fixed text a flagged request gets, and the answer's kind


class RefusedError(Exception):
    """A screen refused the request: the answer is dropped unseen."""


class Verdict:
    """A request screen's verdict, asked for while the model starts answering."""

    def __init__(self, flagged: Awaitable[bool] | None) -> None:
        self._pending = asyncio.ensure_future(flagged) if flagged is not None else None

    async def passed(self) -> None:
        """Wait for the verdict (once); raise RefusedError if the request was flagged."""
        if self._pending is None:
            return
        flagged = await self._pending
        self._pending = None
        if flagged:
            raise RefusedError

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()


class RequestScreen:
    def __init__(self, moderator: Moderator | None) -> None:
        self._moderator = moderator

    def start(self, turn: Turn) -> Verdict:
        """Ask for the verdict on this message; a resumed answer passed already."""
        if self._moderator is None or turn.resumed:
            return Verdict(None)
        return Verdict(self._moderator.flagged(turn.incoming.text))


class ScreenedAnswer:
    """The answer's chunks, each let through only once the screens passed; when they refuse,
    what is left is replaced by `refusal()`. `refused` tells, once iterated, whether it was."""

    def __init__(
        self, chunks: AsyncIterator[Chunk], verdict: Verdict, refusal: Callable[[], list[Chunk]]
    ) -> None:
        self._chunks = chunks
        self._verdict = verdict
        self._refusal = refusal
        self.refused = False

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        try:
            async for chunk in self._chunks:
                await self._verdict.passed()
                yield chunk
        except RefusedError:
            REQUESTS_FLAGGED.inc()
            self.refused = True
            for chunk in self._refusal():
                yield chunk
        finally:
            self._verdict.close()
