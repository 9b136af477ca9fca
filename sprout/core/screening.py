"""The two screening stages: the request (before anything of the answer is shown) and the
answer (each chunk before it leaves).

The request is screened twice. First, before routing, by the offline phrase matcher
(`check`): every message, the first one and voice notes' words included, with no model and
no wait. Then, for a message the model is to answer, by the moderation endpoint, asked beside
the model's first tokens rather than before the request (`start`); the answer screen holds
every chunk until that verdict is in. A flag holds back all of the answer: its categories are
mapped onto ours, and the safeguarding response for them goes instead (or, for a category
none of ours covers, the safe text).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from sprout.core.chunking import Chunk
from sprout.core.llm import Moderator
from sprout.core.metrics import REQUESTS_FLAGGED
from sprout.core.safety import Category, Concern, PhraseMatcher, ordered
from sprout.core.turn import Turn

REFUSED_KIND = "unsafe"  # the answer's kind when moderation flagged what no category covers

# What the moderation endpoint's categories mean for a parent writing to Sprout. The others
# (violence, harassment, hate, illicit, sexual) get the safe text, which still names 999 and
# the helpline for a worry about a child.
MODERATION_CATEGORIES = {
    "self-harm": Category.CRISIS,
    "self-harm/intent": Category.CRISIS,
    "self-harm/instructions": Category.CRISIS,
    "sexual/minors": Category.CHILD_AT_RISK,
}


def concern_of(flags: frozenset[str]) -> Concern | None:
    """Our categories for the moderation categories a request was flagged with."""
    mapped = ordered(MODERATION_CATEGORIES[f] for f in flags if f in MODERATION_CATEGORIES)
    return Concern(mapped, source="moderation") if mapped else None


class HeldError(Exception):
    """Moderation flagged the request: the answer is dropped unseen, and `concern` (None when
    none of our categories covers the flag) says what goes instead."""

    def __init__(self, concern: Concern | None) -> None:
        super().__init__(concern.primary.value if concern else REFUSED_KIND)
        self.concern = concern


class Verdict:
    """Moderation's verdict on a request, asked for while the model starts answering."""

    def __init__(self, flags: Awaitable[frozenset[str]] | None) -> None:
        self._pending = asyncio.ensure_future(flags) if flags is not None else None

    async def passed(self) -> None:
        """Wait for the verdict (once); raise HeldError if the request was flagged."""
        if self._pending is None:
            return
        flags = await self._pending
        self._pending = None
        if flags:
            raise HeldError(concern_of(flags))

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()


class RequestScreen:
    def __init__(self, matcher: PhraseMatcher, moderator: Moderator | None) -> None:
        self._matcher = matcher
        self._moderator = moderator

    def check(self, turn: Turn) -> Concern | None:
        """What the phrase lists find in the message (offline, at once)."""
        return self._matcher.match(turn.incoming.text)

    def start(self, turn: Turn) -> Verdict:
        """Ask moderation for its verdict on this message. A resumed answer is asked again:
        what the user already has may be the start of a safeguarding response."""
        if self._moderator is None:
            return Verdict(None)
        return Verdict(self._moderator.flags(turn.incoming.text))


Instead = Callable[[Concern | None], AsyncIterator[Chunk]]


class ScreenedAnswer:
    """The answer's chunks, each let through only once the screens passed; when moderation
    holds it, what is left is replaced by `instead(concern)`. `held` tells, once iterated,
    whether it was (and `concern` for what)."""

    def __init__(self, chunks: AsyncIterator[Chunk], verdict: Verdict, instead: Instead) -> None:
        self._chunks = chunks
        self._verdict = verdict
        self._instead = instead
        self.held = False
        self.concern: Concern | None = None

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        try:
            async for chunk in self._chunks:
                await self._verdict.passed()
                yield chunk
        except HeldError as held:
            REQUESTS_FLAGGED.inc()
            self.held, self.concern = True, held.concern
            async for chunk in self._instead(held.concern):
                yield chunk
        finally:
            self._verdict.close()
