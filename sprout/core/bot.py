"""Bot: the one entry point channels call. Message in, rendered chunks out, as they are ready."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

from pydantic import ValidationError

from sprout.core.chunking import Chunk, Chunker
from sprout.core.history import recent_history
from sprout.core.llm import ChatModel, ModelError, Moderator, ToolCall, Tools, Transcriber
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import BLOCK_SEPARATOR, ChannelSpec, Incoming, Media
from sprout.core.metrics import REQUESTS_FLAGGED, VOICE_NOTES
from sprout.core.ports import MediaError, MediaFetcher
from sprout.core.profile import LANGUAGE_NAMES, Profile
from sprout.core.prompts import ChatMessage, Prompts
from sprout.core.ratelimit import RateLimit, Verdict
from sprout.core.routing import Intent, Route, route
from sprout.core.store import Store, UserState

log = get_logger(__name__)

DEFAULT_AGE = "3 years old"
DEFAULT_ACTIVITY_AGE = "3–4 years old"
HISTORY_KINDS = frozenset({Intent.EXPLAIN.value, Intent.ACTIVITIES.value, Intent.CHAT.value})
# Privacy commands work however fast someone writes.
_ALWAYS_ALLOWED = frozenset({Intent.STOP, Intent.START, Intent.FORGET})
# The profile tool's argument for what else the message asked ("…, ideas with playdough?").
FOLLOW_UP_ARGUMENT = "then_answer"
_LATEST = sys.maxsize  # answering outside the job log: every stored turn is history


Preview = Callable[[str], None]


class _Preview:
    """Feeds a live view: model text as it streams, fixed texts as whole blocks."""

    def __init__(self, on_text: Preview | None) -> None:
        self._on_text = on_text
        self._shown = False

    def text(self, delta: str) -> None:
        if self._on_text is not None and delta:
            self._on_text(delta)
            self._shown = True

    def block(self, text: str) -> None:
        self.text((BLOCK_SEPARATOR if self._shown else "") + text)

    def blocks(self, chunks: list[Chunk]) -> list[Chunk]:
        """Show whole chunks (a fixed text) as they will be sent; returns them."""
        for chunk in chunks:
            self.block(chunk.text)
        return chunks


@dataclass
class _FollowUp:
    """What a message asked besides a profile update, to answer once the update is saved."""

    question: str = ""
    profile: Profile = field(default_factory=Profile)

    def set(self, call: ToolCall, profile: Profile) -> None:
        question = call.arguments.get(FOLLOW_UP_ARGUMENT)
        if call.name == "update_profile" and isinstance(question, str) and question.strip():
            self.question, self.profile = question.strip(), profile


def heard_line(heard: str) -> str:
    """What a voice note was understood as, quoted above its answer, so a parent can tell a
    mishearing from a bad answer (formatting marks dropped: they would unbalance the italics)."""
    quoted = heard.translate(str.maketrans("", "", "*_~`"))
    return f"🎤 _“{quoted}”_\n\n"


class _RefusedError(Exception):
    """Moderation flagged the request: the answer is dropped unseen."""


class _Gate:
    """A moderation verdict asked for while the model starts answering."""

    def __init__(self, verdict: Awaitable[bool] | None) -> None:
        self._pending = asyncio.ensure_future(verdict) if verdict is not None else None

    async def passed(self) -> None:
        """Wait for the verdict (once); raise _RefusedError if the request was flagged."""
        if self._pending is None:
            return
        flagged = await self._pending
        self._pending = None
        if flagged:
            raise _RefusedError

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()


@dataclass
class Outcome:
    """What answering a message did, for the job that records it."""

    kind: str | None = None
    erase_user: bool = False
    language: str | None = None


class Bot:
    def __init__(
        self,
        model: ChatModel,
        prompts: Prompts,
        store: Store,
        max_input_chars: int = 2000,
        history_tokens: int = 3000,
        model_attempts: int = 2,
        retry_wait_s: float = 1.0,
        rate_limit: RateLimit | None = None,
        transcriber: Transcriber | None = None,
        moderator: Moderator | None = None,
    ) -> None:
        self.model = model
        self._transcriber = transcriber
        self._moderator = moderator
        self.prompts = prompts
        self._store = store
        self._max_input_chars = max_input_chars
        self._history_tokens = history_tokens
        self._attempts = model_attempts
        self._retry_wait_s = retry_wait_s
        self._rate_limit = rate_limit

    async def answer(self, incoming: Incoming, spec: ChannelSpec) -> AsyncIterator[str]:
        """Each chunk's text as soon as it is complete, rendered and within the channel limit."""
        async for chunk in self.chunks(incoming, spec):
            yield chunk.text

    async def reply(self, incoming: Incoming, spec: ChannelSpec) -> list[str]:
        return [text async for text in self.answer(incoming, spec)]

    def fixed(
        self, key: str, spec: ChannelSpec, language: str | None = None, **values: str
    ) -> list[Chunk]:
        """A fixed text, in as few messages as the channel allows (no need to send it early)."""
        fill = spec.max_len or 1
        chunker = Chunker(spec, first_min=fill, min_len=fill)
        return chunker.feed(self.prompts.text(key, language, **values)) + chunker.finish()

    async def chunks(
        self,
        incoming: Incoming,
        spec: ChannelSpec,
        inbound_id: int | None = None,
        already_sent: str = "",
        outcome: Outcome | None = None,
        on_text: Preview | None = None,
        fetch_media: MediaFetcher | None = None,
    ) -> AsyncIterator[Chunk]:
        """The answer as chunks. `already_sent` is the part a user already has (after a crash):
        the model is asked to continue from it instead of starting again. `on_text`, when
        given, also sees the answer's text as it is written, word by word (for live views).
        A voice note is transcribed first when the channel can `fetch_media` and a transcriber
        is set; the transcript is recorded as the message's text (history, resuming)."""
        outcome = outcome or Outcome()
        preview = _Preview(on_text)
        user = incoming.user_id
        state = await self._store.user_state(user, inbound_id or _LATEST, HISTORY_KINDS)
        profile = _profile(state.profile)
        voice, lead = incoming.voice_note, ""
        if voice and fetch_media and self._transcriber and not state.opted_out:
            heard = await self._listen(user, voice, fetch_media, self._transcriber)
            if not heard:
                outcome.kind, outcome.language = "voice_failed", profile.language
                for chunk in preview.blocks(self.fixed("voice_failed", spec, profile.language)):
                    yield chunk
                return
            incoming = replace(incoming, text=heard)
            lead = heard_line(heard)
            if inbound_id is not None:
                await self._store.set_inbound_text(inbound_id, heard)
        request = route(incoming.text, state.first_contact)
        # Fixed texts: the profile's language, else the one the user's command word is in.
        lang = outcome.language = profile.language or request.language
        outcome.kind = request.intent.value
        if state.opted_out and request.intent is not Intent.START:
            outcome.kind = None  # opted out: say nothing at all
            return
        if self._rate_limit is not None and request.intent not in _ALWAYS_ALLOWED:
            verdict = await self._rate_limit.check(user)
            if verdict is not Verdict.ALLOW:
                log.info("rate_limited", user=user_ref(user), notified=verdict is Verdict.NOTIFY)
                outcome.kind = "slow_down" if verdict is Verdict.NOTIFY else None
                if verdict is Verdict.NOTIFY:
                    for chunk in preview.blocks(self.fixed("slow_down", spec, lang)):
                        yield chunk
                return

        fixed = await self._command(incoming, request, state, profile, inbound_id, outcome)
        if fixed is not None:
            key, values = fixed
            outcome.kind = key
            for chunk in preview.blocks(self.fixed(key, spec, lang, **values)):
                yield chunk
            return

        messages, tools = self._model_request(request.intent, request.argument, profile, state)
        # Moderation runs beside the model's first tokens instead of before the request; nothing
        # of the answer is shown, saved or sent until it passed. A resumed answer passed already.
        moderator = None if already_sent else self._moderator
        gate = _Gate(moderator.flagged(incoming.text) if moderator is not None else None)
        try:
            follow_up = _FollowUp()
            generation = self._generate(
                messages, tools, spec, already_sent, user, profile, preview, follow_up, gate, lead
            )
            async for chunk in generation:
                yield chunk
            if follow_up.question and not already_sent:
                # "my son is 2, ideas with playdough?": saved, now the question, for the new age.
                messages, _ = self._model_request(
                    Intent.CHAT, follow_up.question, follow_up.profile, state
                )
                generation = self._generate(
                    messages, (), spec, "", user, follow_up.profile, preview, _FollowUp(), gate
                )
                async for chunk in generation:
                    yield chunk
        except _RefusedError:
            REQUESTS_FLAGGED.inc()
            outcome.kind = "unsafe"
            for chunk in preview.blocks(self.fixed("unsafe", spec, lang)):
                yield chunk
        finally:
            gate.close()

    @staticmethod
    async def _listen(
        user: str, voice: Media, fetch_media: MediaFetcher, transcriber: Transcriber
    ) -> str:
        """The voice note's words; empty when it could not be fetched or understood."""
        try:
            audio = await fetch_media.fetch(voice)
            heard = await transcriber.transcribe(audio, voice.content_type)
        except (MediaError, ModelError) as error:
            log.warning("voice_note_failed", user=user_ref(user), error=type(error).__name__)
            VOICE_NOTES.labels("failed").inc()
            return ""
        log.info("voice_note_heard", user=user_ref(user), audio_bytes=len(audio))
        VOICE_NOTES.labels("heard" if heard else "failed").inc()
        return heard

    async def _command(
        self,
        incoming: Incoming,
        request: Route,
        state: UserState,
        profile: Profile,
        inbound_id: int | None,
        outcome: Outcome,
    ) -> tuple[str, dict[str, str]] | None:
        """Do what a command or guard asks; return the fixed text (key, values) that answers
        it, or None when the model should answer."""
        user = incoming.user_id
        if len(incoming.text) > self._max_input_chars:
            return "too_long", {"max_chars": str(self._max_input_chars)}
        if incoming.media and not incoming.text.strip():
            return "media_only", {}
        match request.intent:
            case Intent.HELP | Intent.START:
                if state.opted_out:
                    await self._store.set_opted_out(user, False)
                return "help", {}
            case Intent.STOP:
                await self._store.set_opted_out(user, True)
                return "stopped", {}
            case Intent.RESET:
                await self._store.reset_history(user, inbound_id or 0)
                return "reset_done", {}
            case Intent.FORGET:
                await self._store.erase_user(user, keep_inbound_id=inbound_id)
                outcome.erase_user = True
                return "forgotten", {}
            case Intent.SETTINGS if not request.argument:
                return "settings", {"profile": self._summary(profile, "\n")}
            case Intent.EXPLAIN | Intent.ACTIVITIES if not request.argument:
                return f"{request.intent.value}_empty", {}
        return None

    def _model_request(
        self, intent: Intent, argument: str, profile: Profile, state: UserState
    ) -> tuple[list[ChatMessage], Tools]:
        language = profile.language_name() or "the same language as the user's message"
        places = self.prompts.text(f"places_{profile.places or 'both'}")
        areas = self.prompts.areas_description(tuple(profile.areas))
        if intent is Intent.EXPLAIN:
            age = profile.explain_age(DEFAULT_AGE)
            return self.prompts.explain.messages(age=age, question=argument, language=language), ()
        age = profile.activity_age(DEFAULT_ACTIVITY_AGE)
        if intent is Intent.ACTIVITIES:
            messages = self.prompts.activities.messages(
                age=age, places=places, areas=areas, topic=argument, language=language
            )
            return messages, ()
        system, user = self.prompts.chat.messages(
            age=age, places=places, areas=areas, language=language, message=argument
        )
        system["content"] += BLOCK_SEPARATOR + self.prompts.profile_instructions
        history = recent_history(state.history, self._history_tokens)
        return [system, *history, user], [dict(self.prompts.profile_tool)]

    async def _generate(
        self,
        messages: list[ChatMessage],
        tools: Tools,
        spec: ChannelSpec,
        already_sent: str,
        user: str,
        profile: Profile,
        preview: _Preview,
        follow_up: _FollowUp,
        gate: _Gate,
        lead: str = "",
    ) -> AsyncIterator[Chunk]:
        """Stream the model into chunks. The SDK has already retried failed requests; a stream
        that still fails, possibly mid-answer, is tried again from what was already yielded.
        A profile update that came with a question leaves the question in `follow_up`.
        Raises _RefusedError, before anything is shown, if the `gate` (moderation) refuses.
        `lead` opens the answer (what a voice note was heard to say) unless part of it is out."""
        delivered = [already_sent] if already_sent else []
        for attempt in range(1, self._attempts + 1):
            chunker = Chunker(spec)
            try:
                request = self._continuation(messages, BLOCK_SEPARATOR.join(delivered))
                opening = lead if not delivered else ""
                async for item in self.model.stream(request, tools):
                    await gate.passed()
                    if opening:
                        preview.text(opening)
                        for chunk in chunker.feed(opening):
                            delivered.append(chunk.source)
                            yield chunk
                        opening = ""
                    if isinstance(item, ToolCall):
                        profile = await self._save_profile(user, profile, item)
                        follow_up.set(item, profile)
                        pieces = preview.blocks(self.fixed(
                            "profile_saved", spec, profile.language,
                            profile=self._summary(profile, " · "),
                        ))  # fmt: skip
                    else:
                        preview.text(item)
                        pieces = chunker.feed(item)
                    for chunk in pieces:
                        delivered.append(chunk.source)
                        yield chunk
                await gate.passed()
                for chunk in chunker.finish():
                    delivered.append(chunk.source)
                    yield chunk
                return
            except ModelError as error:
                log.warning("model_failed", error=str(error)[:200], attempt=attempt)
                if attempt < self._attempts:
                    await asyncio.sleep(self._retry_wait_s * 2 ** (attempt - 1))
        for chunk in preview.blocks(self.fixed("apology", spec, profile.language)):
            yield chunk

    async def _save_profile(self, user: str, profile: Profile, call: ToolCall) -> Profile:
        if call.name != "update_profile":
            return profile
        updated = profile.updated(call.arguments)
        await self._store.save_profile(user, updated.model_dump())
        log.info("profile_updated", user=user_ref(user), fields=sorted(call.arguments))
        return updated

    def _summary(self, profile: Profile, separator: str) -> str:
        lang = profile.language
        text = self.prompts.text
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
            [
                f"👶 {children or text('not_set', lang)}",
                f"📍 {places}",
                f"🎯 {areas}",
                f"🗣 {language}",
            ]
        )

    def _continuation(self, messages: list[ChatMessage], delivered: str) -> list[ChatMessage]:
        if not delivered:
            return messages
        return [
            *messages,
            {"role": "assistant", "content": delivered},
            {"role": "user", "content": self.prompts.continue_instruction},
        ]


def _profile(data: dict[str, object]) -> Profile:
    try:
        return Profile.model_validate(data)
    except ValidationError:
        return Profile()
