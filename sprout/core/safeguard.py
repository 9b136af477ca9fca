"""Answering a message that shows a risk: the right help first, then someone listening.

The help is the category's response (prompts/safety/<lang>.toml, with the region's numbers),
sent at once, before any model is asked, so it reaches the parent even when the model is slow
or down. An emergency gets only that. Every other category then gets a short, kind reply the
model writes under the safeguarding prompt: a parent in crisis is listened to, not refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from sprout.core.chunking import Chunk
from sprout.core.events import SafetyEvents, request_events
from sprout.core.generate import Generate, KindReply
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import BLOCK_SEPARATOR
from sprout.core.prompts import Prompts
from sprout.core.safety import Category, Concern
from sprout.core.screening import AnswerGuard
from sprout.core.turn import LiveView, Turn, fixed_chunks

log = get_logger(__name__)


@dataclass(frozen=True)
class Safeguarding:
    """The decision to answer with the help for `concern`, in `language`."""

    concern: Concern
    language: str | None

    @property
    def kind(self) -> str:
        return self.concern.primary.value


@dataclass(frozen=True)
class SafeguardParts:
    """What the safeguarding stage uses besides the prompts."""

    generate: Generate
    guard: AnswerGuard  # the kind reply is the model's: its chunks are screened too
    events: SafetyEvents


class Safeguard:
    def __init__(self, prompts: Prompts, parts: SafeguardParts) -> None:
        self._prompts = prompts
        self._generate = parts.generate
        self._guard = parts.guard
        self._events = parts.events

    def decide(self, turn: Turn, concern: Concern) -> Safeguarding:
        """In the parent's own language: the profile's, else the one the phrases were in."""
        language = turn.profile.language or concern.language
        return Safeguarding(concern, language if self._prompts.has_language(language) else None)

    async def answer(
        self, turn: Turn, decided: Safeguarding, view: LiveView
    ) -> AsyncIterator[Chunk]:
        concern = decided.concern
        log.info(
            "safeguarding",
            source=concern.source,
            categories=[category.value for category in concern.categories],
            user=user_ref(turn.user),
        )
        responses = self._prompts.safeguarding
        help_text = BLOCK_SEPARATOR.join(
            responses.response(category.value, decided.language) for category in concern.categories
        )
        # A resumed answer sends only what the parent does not have yet.
        sent = turn.ask.already_sent
        chunks = fixed_chunks(turn.lead + help_text, turn.spec)
        for chunk in view.blocks([c for c in chunks if not sent or c.source not in sent]):
            yield chunk
        # Recorded once the help is on its way (an emergency's 999 waits for nothing).
        await self._events.record(turn.origin, request_events(concern))
        if Category.EMERGENCY in concern.categories or self._guard.ended(turn):
            return
        reply = KindReply(concern.primary, help_text, decided.language)
        replying = replace(turn, language=decided.language)
        kind = self._generate.kind_reply(replying, reply, view)
        async for chunk in self._guard.guard(kind, replying, view):
            yield chunk
