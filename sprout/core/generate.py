"""Generating an answer: the prompt for what was asked, the model streamed into chunks, the
profile tool, retries, and the apology when the model cannot answer."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace
from typing import Protocol

from sprout.core.bounds import BoundedChunker
from sprout.core.checkins import Activity, Checkins
from sprout.core.chunking import Chunk
from sprout.core.history import recent_history
from sprout.core.llm import ChatModel, ModelError, ToolCall, Tools, Truncated
from sprout.core.logs import get_logger, user_ref
from sprout.core.messages import BLOCK_SEPARATOR
from sprout.core.nudging import is_nudge
from sprout.core.profile import LANGUAGE_NAMES, Profile
from sprout.core.prompts import ChatMessage, Prompts
from sprout.core.routing import Intent
from sprout.core.safety import Category
from sprout.core.screening import Verdict
from sprout.core.store import Store
from sprout.core.turn import LiveView, Turn, fixed_chunks, profile_summary
from sprout.core.unprompted import last_heard

log = get_logger(__name__)

DEFAULT_AGE = "3 years old"
DEFAULT_ACTIVITY_AGE = "3–4 years old"
# The profile tool's argument for what else the message asked ("…, ideas with playdough?").
FOLLOW_UP_ARGUMENT = "then_answer"


@dataclass(frozen=True)
class ModelLimits:
    history_tokens: int = 3000
    attempts: int = 2
    retry_wait_s: float = 1.0
    # Activities on a messaging channel: one idea at a time (SPROUT_ACTIVITY_STYLE=one), or
    # the whole list ("list"; the web page always gets the list).
    one_idea: bool = True
    # A check-in about each activity given on a messaging channel (SPROUT_CHECKINS).
    checkins: bool = True


@dataclass(frozen=True)
class _Request:
    """One model request and what its answer continues."""

    messages: list[ChatMessage]
    tools: Tools
    profile: Profile
    max_tokens: int
    lead: str = ""  # opens the answer unless part of it is out already
    idea_topic: str | None = None  # activity ideas on this topic: filed once written
    idea_list: bool = False  # the whole list of ideas, not one


@dataclass(frozen=True)
class KindReply:
    """What the kind reply after a safeguarding response needs: the category, the help the
    parent was just sent, and the language of that help."""

    category: Category
    help_text: str
    language: str | None


@dataclass(frozen=True)
class _FollowUp:
    """What a message asked besides a profile update, to answer once the update is saved."""

    question: str
    profile: Profile


def _lengthened(request: _Request, turn: Turn) -> _Request:
    """The request with the length an experiment's arm asks for, at the end of its system
    prompt (where it weighs most)."""
    line = turn.ask.behaviour.length_line if turn.ask.behaviour else ""
    if not line:
        return request
    system, *rest = request.messages
    longer: ChatMessage = {"role": "system", "content": system["content"] + "\n\n" + line}
    return replace(request, messages=[longer, *rest])


class Generate:
    def __init__(
        self, model: ChatModel, prompts: Prompts, store: Store, limits: ModelLimits
    ) -> None:
        self.model = model
        self._prompts = prompts
        self._store = store
        self._limits = limits
        self._checkins = Checkins(store)

    async def stream(
        self, turn: Turn, asked: Asked, verdict: Verdict, view: LiveView
    ) -> AsyncGenerator[Chunk, None]:
        """The answer as chunks. Nothing is shown or saved before the request screen's
        `verdict` passed (RefusedError otherwise). "my son is 2, ideas with playdough?":
        the profile is saved, then the question is answered for the new age."""
        first = _lengthened(await self._first_request(turn, asked), turn)
        follow_up: _FollowUp | None = None
        sources = [turn.ask.already_sent]
        async for item in self._answer(turn, first, verdict, view):
            if isinstance(item, _FollowUp):
                follow_up = item
            else:
                sources.append(item.source)
                yield item
        if first.idea_topic is not None:
            await self._file_ideas(turn, first, "\n".join(sources))
        if follow_up is not None and not turn.resumed:
            question = self._request(turn, Intent.CHAT, follow_up.question, follow_up.profile)
            # The update is saved: not offered again.
            again = _lengthened(replace(question, tools=()), turn)
            async for item in self._answer(turn, again, verdict, view):
                if isinstance(item, Chunk):
                    yield item

    async def _file_ideas(self, turn: Turn, request: _Request, written: str) -> None:
        """Keep the ideas given (the next ones differ) and plan the check-in about them."""
        assert request.idea_topic is not None
        titles = idea_titles(written) if request.idea_list else [idea_title(written)]
        named = [title for title in titles if title]
        for title in named:
            await self._store.add_idea(turn.user, request.idea_topic, title)
        inbound_id = turn.ask.inbound_id
        if not (named and self._limits.checkins and turn.spec.messaging and inbound_id):
            return
        nudged = is_nudge(turn.incoming)
        # A list is asked about by the parent's topic; a regular idea's topic is Sprout's own.
        many = len(named) > 1 and not nudged
        about = request.idea_topic.strip() if many else named[0]
        given_at = turn.incoming.received_at
        heard = await last_heard(self._store, turn.user) if nudged else None
        activity = Activity(
            turn.user, turn.incoming.channel, inbound_id, about, many, given_at, heard or given_at
        )
        await self._checkins.plan(activity)

    async def kind_reply(
        self, turn: Turn, reply: KindReply, view: LiveView
    ) -> AsyncGenerator[Chunk, None]:
        """A short reply that listens, under the safeguarding prompt, after the help (no
        tools: nothing is saved from a message like this)."""
        safeguarding = self._prompts.safeguarding
        language = turn.profile.language_name() or LANGUAGE_NAMES.get(reply.language or "")
        system, user = safeguarding.reply.messages(
            language=language or "the same language as the user's message",
            concern=safeguarding.guidance[reply.category],
            help=reply.help_text,
            message=turn.incoming.text,
        )
        history = recent_history(turn.state.history, self._limits.history_tokens)
        messages = [system, *history, user]
        request = _Request(messages, (), turn.profile, safeguarding.reply.max_tokens)
        async for item in self._answer(turn, request, Verdict(None), view):
            if isinstance(item, Chunk):
                yield item

    async def _first_request(self, turn: Turn, asked: Asked) -> _Request:
        """The request for what the message asked: for activities, one idea unlike those the
        user already had on the topic when that is the style here, else the list; either is
        steered by what the family said of their last activity."""
        if asked.intent is not Intent.ACTIVITIES:
            return self._request(turn, asked.intent, asked.argument, turn.profile, turn.lead)
        behaviour = turn.ask.behaviour
        one_idea = behaviour.one_idea if behaviour is not None else self._limits.one_idea
        style_one = one_idea and turn.spec.messaging
        one = (style_one or asked.another) and not asked.whole_list
        # A regular idea avoids every idea the family had, whatever its topic. The list's
        # prompt may ask for them too (an experiment's arm may give it the one idea's prompt).
        had = await self._store.ideas(
            turn.user, None if is_nudge(turn.incoming) else asked.argument
        )
        avoid = "\n".join(f"- {title}" for title in had) or "- (none yet)"
        prompts = turn.prompts(self._prompts)
        template = prompts.activity_one if one else prompts.activities
        profile = turn.profile
        messages = template.messages(
            age=profile.activity_age(DEFAULT_ACTIVITY_AGE),
            places=prompts.text(f"places_{profile.places or 'both'}"),
            areas=prompts.areas_description(tuple(profile.areas)),
            topic=asked.argument,
            language=profile.language_name() or "the same language as the user's message",
            avoid=avoid,
        )
        await self._steer(turn, messages)
        # Filed as a list too, so "another idea" continues the topic with one not listed.
        return _Request(
            messages, (), profile, template.max_tokens, turn.lead,
            idea_topic=asked.argument, idea_list=not one,
        )  # fmt: skip

    async def _steer(self, turn: Turn, messages: list[ChatMessage]) -> None:
        """Tell the model what the family said of their last activity, when they said it."""
        said = await self._checkins.steer(turn.user, turn.incoming.received_at)
        if said is not None and (line := self._prompts.steering.get(said[0])):
            messages[0]["content"] += BLOCK_SEPARATOR + line.format(activity=said[1])

    def _request(
        self, turn: Turn, intent: Intent, argument: str, profile: Profile, lead: str = ""
    ) -> _Request:
        prompts, state = turn.prompts(self._prompts), turn.state
        language = profile.language_name() or "the same language as the user's message"
        places = prompts.text(f"places_{profile.places or 'both'}")
        areas = prompts.areas_description(tuple(profile.areas))
        if intent is Intent.EXPLAIN:
            age = profile.explain_age(DEFAULT_AGE)
            messages = prompts.explain.messages(age=age, question=argument, language=language)
            return _Request(messages, (), profile, prompts.explain.max_tokens, lead)
        age = profile.activity_age(DEFAULT_ACTIVITY_AGE)
        system, user = prompts.chat.messages(
            age=age, places=places, areas=areas, language=language, message=argument
        )
        system["content"] += BLOCK_SEPARATOR + prompts.profile_instructions
        history = recent_history(state.history, self._limits.history_tokens)
        tools = [dict(prompts.profile_tool)]
        return _Request([system, *history, user], tools, profile, prompts.chat.max_tokens, lead)

    async def _answer(
        self, turn: Turn, request: _Request, verdict: Verdict, view: LiveView
    ) -> AsyncIterator[Chunk | _FollowUp]:
        """Stream one request. The SDK has already retried failed requests; a stream that
        still fails, possibly mid-answer, is tried again from what was already yielded."""
        delivered = [turn.ask.already_sent] if turn.ask.already_sent else []
        attempts = self._limits.attempts
        for attempt in range(1, attempts + 1):
            try:
                async for item in self._attempt(turn, request, delivered, verdict, view):
                    if isinstance(item, Chunk):
                        delivered.append(item.source)
                    yield item
                return
            except ModelError as error:
                log.warning("model_failed", error=str(error)[:200], attempt=attempt)
                if attempt < attempts:
                    await asyncio.sleep(self._limits.retry_wait_s * 2 ** (attempt - 1))
        language = request.profile.language
        for chunk in view.blocks(self._fixed("apology", turn, language)):
            yield chunk

    async def _attempt(
        self, turn: Turn, request: _Request, delivered: list[str], verdict: Verdict, view: LiveView
    ) -> AsyncIterator[Chunk | _FollowUp]:
        offer = self._prompts.text("cut_short", request.profile.language)
        # Messages out so far: those before a crash, and those of a failed attempt.
        sent = turn.ask.messages_sent + len(delivered) - bool(turn.ask.already_sent)
        writer = BoundedChunker(turn.spec, offer, already_sent=sent)
        messages = self._continuation(request.messages, BLOCK_SEPARATOR.join(delivered))
        opening = request.lead if not delivered else ""
        profile, truncated = request.profile, False
        async for item in self.model.stream(messages, request.tools, request.max_tokens):
            await verdict.passed()
            if opening:
                view.text(opening)
                for chunk in writer.feed(opening):
                    yield chunk
                opening = ""
            if isinstance(item, ToolCall):
                profile = await self._save_profile(turn.user, profile, item)
                if (question := _follow_up_question(item)) is not None:
                    yield _FollowUp(question, profile)
                summary = profile_summary(self._prompts, profile, " · ")
                fixed = self._fixed("profile_saved", turn, profile.language, profile=summary)
                for chunk in view.blocks(fixed):
                    yield chunk
            elif isinstance(item, Truncated):
                truncated = True
            else:
                view.text(item)
                for chunk in writer.feed(item):
                    yield chunk
                if writer.stopped:
                    break  # closing the stream stops the model
        await verdict.passed()
        view.finish()
        for chunk in writer.finish(truncated):
            yield chunk

    def _fixed(self, key: str, turn: Turn, language: str | None, **values: str) -> list[Chunk]:
        return fixed_chunks(self._prompts.text(key, language, **values), turn.spec)

    async def _save_profile(self, user: str, profile: Profile, call: ToolCall) -> Profile:
        if call.name != "update_profile":
            return profile
        updated = profile.updated(call.arguments)
        await self._store.save_profile(user, updated.model_dump())
        log.info("profile_updated", user=user_ref(user), fields=sorted(call.arguments))
        return updated

    def _continuation(self, messages: list[ChatMessage], delivered: str) -> list[ChatMessage]:
        if not delivered:
            return messages
        return [
            *messages,
            {"role": "assistant", "content": delivered},
            {"role": "user", "content": self._prompts.continue_instruction},
        ]


class Asked(Protocol):
    """What the model is asked (the decision's `ForModel`)."""

    @property
    def intent(self) -> Intent: ...
    @property
    def argument(self) -> str: ...
    @property
    def whole_list(self) -> bool: ...
    @property
    def another(self) -> bool: ...


def idea_title(markdown: str) -> str | None:
    """The name of a one-idea answer: its first bold or heading line ("**Dino stomp**",
    "## Dino stomp"), else its first line."""
    lines = [line.strip() for line in markdown.splitlines() if line.strip()]
    for line in lines:
        text = line.lstrip("#").strip()
        if text.startswith(("**", "__")):
            end = text.find(text[:2], 2)
            return _clean_title(text[2:end] if end > 2 else text[2:])
        if line.startswith("#"):
            return _clean_title(text)
    return _clean_title(lines[0]) if lines else None


def idea_titles(markdown: str) -> list[str]:
    """The names of the ideas in a list of them: each line that is a heading or bold alone
    ("**Dino stomp**", "1. **Dino stomp**") and is followed by what it names, not by another
    name (a section's title, "**Games and crafts**"); else the answer's one name."""
    lines = [line for line in markdown.splitlines() if line.strip()]
    names = [_name(line) for line in lines]
    found = [
        name for name, after in zip(names, [*names[1:], None], strict=True) if name and not after
    ]
    titles = [title for title in map(_clean_title, found) if title]
    if titles:
        return titles
    title = idea_title(markdown)
    return [title] if title else []


def _name(line: str) -> str | None:
    match = _NAME_LINE.fullmatch(line)
    return (match["heading"] or match["bold"]) if match else None


# A line that only names something: a heading, or bold text alone (maybe in a list item).
_NAME_LINE = re.compile(
    r"[ \t]*(?:\d+[.)][ \t]+|[-*+][ \t]+)?"
    r"(?:\#+[ \t]*(?P<heading>.+?)|\*\*(?P<bold>[^*\n]+)\*\*:?)[ \t]*"
)


def _clean_title(text: str) -> str | None:
    return text.strip(" *_:#").strip()[:200] or None


def _follow_up_question(call: ToolCall) -> str | None:
    question = call.arguments.get(FOLLOW_UP_ARGUMENT)
    if call.name == "update_profile" and isinstance(question, str) and question.strip():
        return question.strip()
    return None
