"""Answering a message that shows a risk: the right help first, then someone listening.

The help is the category's response (prompts/safety/<lang>.toml, with the region's numbers),
sent at once, before any model is asked, so it reaches the parent even when the model is slow
or down. An emergency gets only that. Every other category then gets a short, kind reply the
model writes under the safeguarding prompt: a parent in crisis is listened to, not refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sprout.core.chunking import Chunk
from sprout.core.generate import Generate, KindReply
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import BLOCK_SEPARATOR
from sprout.core.prompts import Prompts
from sprout.core.safety import Category, Concern
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


class Safeguard:
    def __init__(self, prompts: Prompts, generate: Generate) -> None:
        self._prompts = prompts
        self._generate = generate

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
        if Category.EMERGENCY in concern.categories:
            return
        reply = KindReply(concern.primary, help_text, decided.language)
        async for chunk in self._generate.kind_reply(turn, reply, view):
            yield chunk
