"""What the stages of answering one message share: the request, the context every stage reads,
and the small helpers that turn fixed texts into chunks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from sprout.core.assigning import Behaviour
from sprout.core.chunking import Chunk, Chunker
from sprout.core.events import Origin
from sprout.core.messages import BLOCK_SEPARATOR, ChannelSpec, Incoming
from sprout.core.ports import MediaFetcher, Preview
from sprout.core.profile import LANGUAGE_NAMES, Profile
from sprout.core.prompts import Prompts
from sprout.core.store import UserState


@dataclass(frozen=True)
class Ask:
    """A message to answer, as a caller hands it to the bot."""

    incoming: Incoming
    spec: ChannelSpec
    # The recorded message; None answers outside the job log (every stored turn is history).
    inbound_id: int | None = None
    # What the user already has of an interrupted answer: the model continues from it.
    already_sent: str = ""
    messages_sent: int = 0  # how many messages that took (they count against the budget)
    # Also shown the answer's text word by word as it is written (a live view).
    on_text: Preview | None = None
    # Fetches what the user attached, so a voice note can be listened to.
    media: MediaFetcher | None = None
    # This user's experiment arms' changes for the turn (None: the settings as they are).
    behaviour: Behaviour | None = None


@dataclass(frozen=True)
class Turn:
    """One message being answered, as every stage sees it."""

    ask: Ask
    incoming: Incoming  # with a voice note's transcript as its text
    state: UserState
    profile: Profile
    lead: str = ""  # opens the answer: what a voice note was heard to say
    unheard: bool = False  # a voice note that could not be fetched or understood
    language: str | None = None  # the language the message was written in, once known

    @property
    def user(self) -> str:
        return self.incoming.user_id

    @property
    def spec(self) -> ChannelSpec:
        return self.ask.spec

    @property
    def resumed(self) -> bool:
        return bool(self.ask.already_sent)

    @property
    def origin(self) -> Origin:
        """Where this turn's safety events come from."""
        return Origin(self.user, self.incoming.channel, self.ask.inbound_id)

    def prompts(self, default: Prompts) -> Prompts:
        """The answer prompts for this turn: an experiment's arm may swap some."""
        behaviour = self.ask.behaviour
        return behaviour.prompts if behaviour and behaviour.prompts else default


# Checks live text against the answer rules: (text, what came just before it) -> a finding.
Screen = Callable[[str, str], object | None]
# Characters of live text held back: a dose's unit or a link's end is seen before its first
# words show. What was shown is kept as context for the next check.
PREVIEW_LAG, PREVIEW_CONTEXT = 40, 160


class LiveView:
    """Feeds a live view: model text as it streams, fixed texts as whole blocks.

    With a `screen` (the answer rules), the live text is held back by `PREVIEW_LAG`
    characters and checked as it grows, so the words of a dose or an off-list link never
    show before the answer screen replaces them: from the first text that breaks a rule,
    nothing more of the model's text is shown."""

    def __init__(self, on_text: Preview | None, screen: Screen | None = None) -> None:
        self._on_text = on_text
        self._screen = screen
        self._shown = False
        self._held = ""  # streamed, not shown yet
        self._before = ""  # the end of what was shown: where a rule's first words may be
        self._stopped = False

    def text(self, delta: str) -> None:
        if self._on_text is None or not delta or self._stopped:
            return
        if self._screen is None:
            self._show(delta)
            return
        self._held += delta
        if self._screen(self._held, self._before) is not None:
            self._stopped = True
            return
        if (cut := len(self._held) - PREVIEW_LAG) > 0:
            self._show(self._held[:cut])
            self._held = self._held[cut:]

    def finish(self) -> None:
        """The model's text ended: what was held back passed the rules."""
        if self._held and not self._stopped:
            self._show(self._held)
        self._held = ""

    def blocks(self, chunks: list[Chunk]) -> list[Chunk]:
        """Show whole chunks (a fixed text) as they will be sent; returns them."""
        self.finish()
        for chunk in chunks:
            self._show((BLOCK_SEPARATOR if self._shown else "") + chunk.text)
        return chunks

    def _show(self, text: str) -> None:
        if self._on_text is not None and text:
            self._on_text(text)
            self._shown = True
            self._before = (self._before + text)[-PREVIEW_CONTEXT:]


def fixed_chunks(text: str, spec: ChannelSpec) -> list[Chunk]:
    """A fixed text, in as few messages as the channel allows (no need to send it early)."""
    fill = spec.max_len or 1
    chunker = Chunker(spec, first_min=fill, min_len=fill)
    return [replace(chunk, fixed=True) for chunk in chunker.feed(text) + chunker.finish()]


def profile_summary(prompts: Prompts, profile: Profile, separator: str) -> str:
    """The profile as a user reads it back (`settings`, and the confirmation of a change)."""
    lang = profile.language
    text = prompts.text
    children = ", ".join(
        (f"{child.name} " if child.name else "")
        + (
            text("age_months", lang, n=str(child.age_months))
            if child.age_months < 24
            else text("age_years", lang, n=str(child.age_months // 12))
        )
        for child in profile.children
    )
    places = text(f"places_{profile.places}", lang) if profile.places else text("not_set", lang)
    areas = ", ".join(profile.areas) or text("all_areas", lang)
    language = LANGUAGE_NAMES.get(lang, lang) if lang else text("not_set", lang)
    return separator.join(
        [f"👶 {children or text('not_set', lang)}", f"📍 {places}", f"🎯 {areas}", f"🗣 {language}"]
    )
