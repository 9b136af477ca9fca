"""The two screening stages: the request (before anything of the answer is shown) and the
answer (each chunk before it leaves).

The request is screened twice. First, before routing, by the offline phrase matcher
(`check`): every message, the first one and voice notes' words included, with no model and
no wait. Then, for a message the model is to answer, by the moderation endpoint, asked beside
the model's first tokens rather than before the request (`start`); the answer screen holds
every chunk until that verdict is in. A flag holds back all of the answer: its categories are
mapped onto ours, and the safeguarding response for them goes instead (or, for a category
none of ours covers, the safe text).

The answer is screened chunk by chunk (`AnswerGuard`): before a chunk leaves, the answer rules
(no doses, no diagnoses, no links off the allow-list; `answer_rules.py`) read it with the end
of the chunk before (a dose cut in two across messages is still seen), then moderation, when
the server has it. At the first chunk that fails, the model is stopped and the safe response
for the reason goes instead of the rest; what was sent stays sent. A resumed answer is screened
the same way, and one that had already ended with a safe response is over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from sprout.core.answer_rules import AnswerRules, Finding, Reason
from sprout.core.chunking import Chunk
from sprout.core.events import SafetyEvents, answer_event
from sprout.core.llm import Moderator
from sprout.core.logs import get_logger, user_ref
from sprout.core.metrics import REQUESTS_FLAGGED
from sprout.core.prompts import Prompts
from sprout.core.safety import Category, Concern, PhraseMatcher, ordered
from sprout.core.turn import LiveView, Turn, fixed_chunks

log = get_logger(__name__)

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
    return Concern(mapped, source="moderation", flags=flags) if mapped else None


class HeldError(Exception):
    """Moderation flagged the request: the answer is dropped unseen, and `concern` (None when
    none of our categories covers the flag) says what goes instead."""

    def __init__(self, concern: Concern | None, flags: frozenset[str] = frozenset()) -> None:
        super().__init__(concern.primary.value if concern else REFUSED_KIND)
        self.concern = concern
        self.flags = flags


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
            raise HeldError(concern_of(flags), flags)

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


Instead = Callable[[HeldError], AsyncIterator[Chunk]]


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
            async for chunk in self._instead(held):
                yield chunk
        finally:
            self._verdict.close()


# How much of what was sent before a chunk is read with it: a sentence or two, enough for the
# medicine named just before "5 ml every 4 hours" in the next message.
CONTEXT_CHARS = 160


class AnswerScreen:
    """Checks one chunk of an answer: the rules, then moderation (when the server has it)."""

    def __init__(self, rules: AnswerRules, moderator: Moderator | None) -> None:
        self._rules = rules
        self._moderator = moderator

    async def check(self, text: str, context: str = "") -> Finding | None:
        found = self._rules.check(text, context)
        if found is not None or self._moderator is None:
            return found
        flags = await self._moderator.flags(text)
        return Finding(Reason.MODERATION, ",".join(sorted(flags))) if flags else None


class AnswerGuard:
    """Lets an answer's chunks through the answer screen; records and replaces what fails."""

    def __init__(self, prompts: Prompts, moderator: Moderator | None, events: SafetyEvents) -> None:
        self._prompts = prompts
        self._screen = AnswerScreen(prompts.answer_rules, moderator)
        self._events = events
        self._safe_texts = prompts.safe_texts()

    def ended(self, turn: Turn) -> bool:
        """A resumed answer whose parent already has a safe response: nothing more goes."""
        sent = turn.ask.already_sent.rstrip()
        return any(sent.endswith(text) for text in self._safe_texts)

    async def guard(
        self, chunks: AsyncGenerator[Chunk, None], turn: Turn, view: LiveView
    ) -> AsyncGenerator[Chunk, None]:
        """`chunks`, each once it passed; at the first that fails, the safe response instead
        of it and of the rest (in the parent's language, else the one they wrote in)."""
        context = turn.ask.already_sent[-CONTEXT_CHARS:]
        # What opens the answer is not the model's: a voice note's words quoted back (a
        # parent may well say "5 ml"), the introduction.
        quoted = turn.lead.strip() if not turn.ask.already_sent else ""
        finding = None
        async with contextlib.aclosing(chunks):  # leaving early closes the model's stream
            async for chunk in chunks:
                text = chunk.source
                if quoted and text.startswith(quoted):
                    text = text[len(quoted) :]
                quoted = ""
                finding = await self._screen.check(text, context) if text.strip() else None
                if finding is not None:
                    break
                context = (context + "\n" + chunk.source)[-CONTEXT_CHARS:]
                yield chunk
        if finding is not None:
            for chunk in await self._replace(turn, finding, view):
                yield chunk

    async def _replace(self, turn: Turn, finding: Finding, view: LiveView) -> list[Chunk]:
        log.info(
            "answer_stopped",
            reason=finding.reason.value,
            rule=finding.rule,
            user=user_ref(turn.user),
        )
        await self._events.record(turn.origin, [answer_event(finding)])
        text = self._prompts.safe_text(finding.reason, turn.profile.language or turn.language)
        return view.blocks(fixed_chunks(text, turn.spec))
