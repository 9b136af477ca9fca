"""Bot: the one entry point channels call. Message in, rendered chunks out, as they are ready.

Answering a message goes through stages, each in its own module: listen (a voice note's
words), screen the request with the phrase lists (before anything else: a message that shows
a risk is answered by safeguard, with the right help first), decide (route, limits,
commands), generate (prompt, model, tools) beside moderation, screen the answer. The Bot only
loads what they read and composes them.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from pydantic import ValidationError

from sprout.core.buttons import FIXED_OFFERS, OFFERS, Buttons, buttons_for
from sprout.core.chunking import Chunk
from sprout.core.decide import Decide, Decision, Fixed, ForModel, Limits
from sprout.core.events import SafetyEvents, uncovered_event
from sprout.core.generate import Generate, ModelLimits
from sprout.core.listen import Listener, heard_line
from sprout.core.llm import ChatModel, Moderator, Transcriber
from sprout.core.messages import ChannelSpec, Incoming
from sprout.core.ports import Preview
from sprout.core.profile import Profile
from sprout.core.prompts import FLAGGED, Prompts
from sprout.core.ratelimit import RateLimit
from sprout.core.routing import Intent
from sprout.core.safeguard import Safeguard, Safeguarding, SafeguardParts
from sprout.core.safety import Category, Concern
from sprout.core.screening import (
    REFUSED_KIND,
    AnswerGuard,
    HeldError,
    RequestScreen,
    ScreenedAnswer,
)
from sprout.core.store import Store
from sprout.core.turn import Ask, LiveView, Turn, fixed_chunks

# What the model sees of earlier turns: its own answers, and the safeguarding ones (the
# conversation goes on after them, and the model should know what was said).
HISTORY_KINDS = frozenset(
    {Intent.EXPLAIN.value, Intent.ACTIVITIES.value, Intent.CHAT.value}
    | {category.value for category in Category}
)
_LATEST = sys.maxsize  # answering outside the job log: every stored turn is history


@dataclass(frozen=True)
class BotConfig:
    """How the bot is tuned, and the optional model services it uses."""

    max_input_chars: int = 2000
    history_tokens: int = 3000
    model_attempts: int = 2
    retry_wait_s: float = 1.0
    rate_limit: RateLimit | None = None
    transcriber: Transcriber | None = None
    moderator: Moderator | None = None
    # Wakes the operators' webhook outbox when a severe event is recorded (None: no webhook).
    alert: Callable[[], None] | None = None
    one_idea: bool = True  # activities one idea at a time on messaging channels
    checkins: bool = True  # a check-in after each activity on a messaging channel


class Answer:
    """A message's answer: iterate for its chunks as they are ready. `kind` and `language`
    say what it was (for the record), `concern` what safeguarding found; `kind` and
    `concern` are final once the chunks are read."""

    def __init__(
        self, decision: Decision | Safeguarding, chunks: AsyncIterator[Chunk] | ScreenedAnswer
    ) -> None:
        self._decision = decision
        self._chunks = chunks
        self.language = decision.language
        self._last: Chunk | None = None
        # A new participant's information about the experiment: before the answer, or after
        # it when the answer is safeguarding help.
        self.opening: list[Chunk] = []
        self.closing: list[Chunk] = []

    @property
    def by_model(self) -> bool:
        """Whether the model writes the answer (it takes a while: "typing…")."""
        return isinstance(self._decision, ForModel)

    @property
    def may_offer(self) -> bool:
        """Whether the answer may end with buttons (the model writes it): its last message
        then waits until it is known to be the last."""
        if isinstance(self._decision, Fixed):
            return self._decision.kind in FIXED_OFFERS
        return isinstance(self._decision, ForModel) and self._decision.kind in OFFERS

    @property
    def offer(self) -> str | None:
        """The kind of answer whose buttons it ends with, once iterated: none after a fixed
        text (an apology, a confirmation) or a held answer."""
        if not self.may_offer or self._last is None:
            return None
        if isinstance(self._decision, Fixed):
            return self._decision.kind
        return None if self._last.fixed else self.kind

    @property
    def concern(self) -> Concern | None:
        if isinstance(self._chunks, ScreenedAnswer):
            return self._chunks.concern
        return self._decision.concern if isinstance(self._decision, Safeguarding) else None

    @property
    def kind(self) -> str | None:
        if isinstance(self._chunks, ScreenedAnswer) and self._chunks.held:
            concern = self._chunks.concern
            return concern.primary.value if concern else REFUSED_KIND
        return self._decision.kind

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        for chunk in self.opening:
            yield chunk
        async for chunk in self._chunks:
            self._last = chunk
            yield chunk
        for chunk in self.closing:
            yield chunk


class Bot:
    def __init__(
        self, model: ChatModel, prompts: Prompts, store: Store, config: BotConfig | None = None
    ) -> None:
        config = config or BotConfig()
        self.prompts = prompts
        self._store = store
        self._listener = Listener(config.transcriber, store) if config.transcriber else None
        self._decide = Decide(store, prompts, Limits(config.max_input_chars, config.rate_limit))
        self._screen = RequestScreen(prompts.safeguarding.matcher, config.moderator)
        limits = ModelLimits(
            config.history_tokens,
            config.model_attempts,
            config.retry_wait_s,
            config.one_idea,
            config.checkins,
        )
        self._generate = Generate(model, prompts, store, limits)
        self._events = SafetyEvents(store, config.alert)
        self._guard = AnswerGuard(prompts, config.moderator, self._events)
        parts = SafeguardParts(self._generate, self._guard, self._events)
        self._safeguard = Safeguard(prompts, parts)

    @property
    def model(self) -> ChatModel:
        return self._generate.model

    def buttons(self, kind: str | None, language: str | None) -> Buttons | None:
        """The buttons under an answer of `kind` (see `Answer.offer`)."""
        return buttons_for(kind, self.prompts, language)

    async def begin(self, ask: Ask) -> Answer:
        """Decide how to answer (carrying out commands); the chunks come as it is iterated."""
        screen = self.prompts.answer_rules.check if ask.on_text is not None else None
        view = LiveView(ask.on_text, screen)
        turn = await self._turn(ask)
        answer = await self._begin(turn, view)
        information = ask.behaviour.information if ask.behaviour else None
        if information is not None and not turn.resumed:
            language = turn.profile.language or answer.language
            text = information or self.prompts.text("research_info", language)
            chunks = fixed_chunks(text, turn.spec)
            if answer.concern is None:
                answer.opening = view.blocks(chunks)
            else:  # safeguarding help comes first, whatever else there is to say
                answer.closing = chunks
        return answer

    async def _begin(self, turn: Turn, view: LiveView) -> Answer:
        concern = self._screen.check(turn)
        if concern is not None:  # before routing: whatever else the message asks
            safeguarding = self._safeguard.decide(turn, concern)
            return Answer(safeguarding, self._safeguard.answer(turn, safeguarding, view))
        decision = await self._decide(turn)
        if isinstance(decision, ForModel):
            if self._guard.ended(turn):
                return Answer(decision, _each(list))
            return Answer(decision, self._model_answer(turn, decision, view))
        if isinstance(decision, Fixed):
            return Answer(decision, _each(self._fixed(decision, turn, view)))
        return Answer(decision, _each(list))

    def _model_answer(self, turn: Turn, decision: ForModel, view: LiveView) -> ScreenedAnswer:
        """The model's answer, screened: moderation on the request, the answer screen on
        each chunk."""
        turn = replace(turn, language=decision.language)
        asked = turn
        if decision.first:  # a newcomer's question: answered, after saying who answers
            intro = self.prompts.text("intro", decision.language)
            asked = replace(turn, lead=turn.lead + intro + "\n\n")
        verdict = self._screen.start(turn)
        chunks = self._generate.stream(asked, decision, verdict, view)
        guarded = self._guard.guard(chunks, turn, view)
        return ScreenedAnswer(guarded, verdict, self._instead(turn, view))

    async def chunks(
        self, incoming: Incoming, spec: ChannelSpec, on_text: Preview | None = None
    ) -> AsyncIterator[Chunk]:
        """The answer to a message outside the job log, as chunks."""
        async for chunk in await self.begin(Ask(incoming, spec, on_text=on_text)):
            yield chunk

    async def answer(self, incoming: Incoming, spec: ChannelSpec) -> AsyncIterator[str]:
        """Each chunk's text as soon as it is complete, rendered and within the channel limit."""
        async for chunk in self.chunks(incoming, spec):
            yield chunk.text

    async def reply(self, incoming: Incoming, spec: ChannelSpec) -> list[str]:
        return [text async for text in self.answer(incoming, spec)]

    async def _turn(self, ask: Ask) -> Turn:
        """What the stages read, a voice note's words included."""
        state = await self._store.user_state(
            ask.incoming.user_id, ask.inbound_id or _LATEST, HISTORY_KINDS
        )
        turn = Turn(ask, ask.incoming, state, _profile_of(state.profile))
        voice = ask.incoming.voice_note
        if voice is None or self._listener is None or ask.media is None or state.opted_out:
            return turn
        heard = await self._listener.hear(ask.incoming, voice, ask.media, ask.inbound_id)
        if heard is None:
            return replace(turn, unheard=True)
        return replace(turn, incoming=heard, lead=heard_line(heard.text))

    def _instead(self, turn: Turn, view: LiveView) -> Callable[[HeldError], AsyncIterator[Chunk]]:
        """What replaces an answer moderation held back: the help for what it was flagged
        for, or the safe text when none of our categories covers it."""

        def instead(held: HeldError) -> AsyncIterator[Chunk]:
            if held.concern is not None:
                safeguarding = self._safeguard.decide(turn, held.concern)
                return self._safeguard.answer(turn, safeguarding, view)
            return self._flagged(turn, held.flags, view)

        return instead

    async def _flagged(
        self, turn: Turn, flags: frozenset[str], view: LiveView
    ) -> AsyncIterator[Chunk]:
        text = self.prompts.safeguarding.response(FLAGGED, turn.profile.language)
        for chunk in view.blocks(fixed_chunks(text, turn.spec)):
            yield chunk
        await self._events.record(turn.origin, [uncovered_event(flags)])

    def _fixed(self, fixed: Fixed, turn: Turn, view: LiveView) -> Callable[[], list[Chunk]]:
        """The fixed text's chunks, shown to the live view when they are taken."""
        text = self.prompts.text(fixed.key, fixed.language, **fixed.values)
        return lambda: view.blocks(fixed_chunks(text, turn.spec))


async def _each(chunks: Callable[[], list[Chunk]]) -> AsyncIterator[Chunk]:
    for chunk in chunks():
        yield chunk


def _profile_of(data: dict[str, object]) -> Profile:
    try:
        return Profile.model_validate(data)
    except ValidationError:
        return Profile()
