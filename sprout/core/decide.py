"""Deciding what a message asks for: route it, apply the limits, carry out commands.

Returns what it decided: a fixed text, silence, or a question for the model."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sprout.core.buttons import DOWN, IDEAS, OFFERS, UP
from sprout.core.checkin_words import is_question, verdict
from sprout.core.checkins import CHECKIN_DUE, REPLY, Checkins
from sprout.core.logs import get_logger, user_ref
from sprout.core.metrics import FEEDBACK
from sprout.core.nudging import is_nudge
from sprout.core.privacy import FORGOTTEN, Forgetting
from sprout.core.programme import Programme, Reply
from sprout.core.prompts import Prompts
from sprout.core.ratelimit import RateLimit, Verdict
from sprout.core.routing import Intent, Route, route
from sprout.core.store import Store, topic_key
from sprout.core.subscriptions import Subscriptions
from sprout.core.turn import Turn, profile_summary

log = get_logger(__name__)

# Privacy commands work however fast someone writes.
_ALWAYS_ALLOWED = frozenset(
    {Intent.STOP, Intent.START, Intent.FORGET, Intent.NO_RESEARCH, Intent.RESEARCH_OK}
)
# After a 👎, the one optional question, and how long its answer is awaited.
FEEDBACK_QUESTION = "feedback_better"
COMMENT_WINDOW = timedelta(minutes=10)
# How long after a check-in the parent's next message is read as their answer to it.
CHECKIN_REPLY_WINDOW = timedelta(hours=6)


@dataclass(frozen=True)
class Fixed:
    """Answer with the fixed text `key` (in `prompts/`), filled with `values`."""

    key: str
    language: str | None
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.key


@dataclass(frozen=True)
class Silent:
    """Say nothing (an opted-out user, or one told to slow down already)."""

    kind: None = None
    language: str | None = None


@dataclass(frozen=True)
class ForModel:
    """The model answers: `intent` with the user's `argument` (`first`: a newcomer's first
    message, answered after a line saying what Sprout is; `whole_list`: all the activity
    ideas, not one at a time; `another`: one more idea, unlike those already had, whatever
    the channel's style)."""

    intent: Intent
    argument: str
    language: str | None
    first: bool = False
    whole_list: bool = False
    another: bool = False

    @property
    def kind(self) -> str:
        return self.intent.value


Decision = Fixed | Silent | ForModel


@dataclass(frozen=True)
class Limits:
    max_input_chars: int = 2000
    rate_limit: RateLimit | None = None


class Decide:
    def __init__(self, store: Store, prompts: Prompts, limits: Limits) -> None:
        self._store = store
        self._prompts = prompts
        self._limits = limits
        self._forgetting = Forgetting(store)
        self._programme = Programme(Subscriptions(store), prompts)
        self._checkins = Checkins(store)

    async def __call__(self, turn: Turn) -> Decision:
        request = route(turn.incoming.text, turn.incoming.payload)
        # Fixed texts: the profile's language, else the one the user's command word is in.
        language = turn.profile.language or request.language
        if turn.unheard:
            return Fixed("voice_failed", turn.profile.language)
        if turn.state.opted_out and request.intent is not Intent.START:
            return Silent()
        if turn.incoming.payload.startswith(CHECKIN_DUE):  # Sprout's own question
            return await self._checkin_question(turn)
        if is_nudge(turn.incoming):  # a regular idea the family asked for: never rate limited
            topic = self._prompts.text("nudge_request", turn.profile.language)
            return ForModel(Intent.ACTIVITIES, topic, turn.profile.language)
        limited = await self._rate_limited(turn.user, request)
        if limited is not None:
            return Fixed("slow_down", language) if limited is Verdict.NOTIFY else Silent()
        key, values = await self._command(turn, request)
        if key is None and request.intent is Intent.CHAT:
            ideas = await self._ideas(turn, language)
            if ideas is not None:
                return ideas
            if await self._comment(turn):
                return Fixed("feedback_noted", language)
            if (said := await self._checkin_reply(turn)) is not None:
                return Fixed(said, language)
        if key is not None:
            return Fixed(key, language, values)
        return await self._for_model(turn, request, language)

    async def _for_model(self, turn: Turn, request: Route, language: str | None) -> Decision:
        """What the model is asked; a button's request is made from what came before it."""
        match request.intent:
            case Intent.ANOTHER | Intent.ALL_IDEAS:
                topic = await self._store.last_topic(turn.user)
                if topic is None:
                    return Fixed("activities_empty", language)
                whole = request.intent is Intent.ALL_IDEAS
                return ForModel(
                    Intent.ACTIVITIES, topic, language, whole_list=whole, another=not whole
                )
            case Intent.MORE:
                more = turn.incoming.text.strip() or self._prompts.text("button_more", language)
                return ForModel(Intent.CHAT, more, language)
        first = turn.state.first_contact and request.intent is Intent.CHAT
        return ForModel(request.intent, request.argument, language, first)

    async def _rate_limited(self, user: str, request: Route) -> Verdict | None:
        if self._limits.rate_limit is None or request.intent in _ALWAYS_ALLOWED:
            return None
        verdict = await self._limits.rate_limit.check(user)
        if verdict is Verdict.ALLOW:
            return None
        log.info("rate_limited", user=user_ref(user), notified=verdict is Verdict.NOTIFY)
        return verdict

    async def _command(self, turn: Turn, request: Route) -> tuple[str | None, dict[str, str]]:
        """Do what a command or guard asks; the fixed text (key, values) that answers it, or
        no key when the model should answer."""
        user, inbound_id = turn.user, turn.ask.inbound_id
        if len(turn.incoming.text) > self._limits.max_input_chars:
            return "too_long", {"max_chars": str(self._limits.max_input_chars)}
        if turn.incoming.media and not turn.incoming.text.strip():
            return "media_only", {}
        match request.intent:
            case Intent.HELP | Intent.START:
                if turn.state.opted_out:
                    await self._store.set_opted_out(user, False)
                return "help", {}
            case Intent.STOP:
                await self._store.set_opted_out(user, True)
                await self._programme.end(user)
                return "stopped", {}
            case Intent.NO_RESEARCH | Intent.RESEARCH_OK:
                out = request.intent is Intent.NO_RESEARCH
                await self._store.set_no_research(user, out)
                log.info("research", user=user_ref(user), taking_part=not out)
                return "research_off" if out else "research_on", {}
            case Intent.RESET:
                await self._store.reset_history(user, inbound_id or 0)
                return "reset_done", {}
            case Intent.FORGET:
                await self._forgetting.asked(user, inbound_id)
                return FORGOTTEN, {}
            case Intent.SETTINGS if not request.argument:
                return "settings", await self._settings(turn)
            case Intent.EXPLAIN | Intent.ACTIVITIES if not request.argument:
                return f"{request.intent.value}_empty", {}
            case Intent.ACTIVITIES if not topic_key(request.argument):
                return "activities_empty", {}
            case Intent.CHECKIN:
                return await self._checkin_tap(turn, request.argument), {}
            case Intent.FEEDBACK:
                await self._feedback(turn, request.argument)
                if request.argument == DOWN:
                    return FEEDBACK_QUESTION, {}
                # A family who liked an idea and gets none by itself is offered them.
                liked = await self._programme.subscribed(user)
                return "feedback_thanks" if liked else "thanks_ideas", {}
        return None, {}

    async def _feedback(self, turn: Turn, payload: str) -> None:
        """Rate the user's last answer (👍 or 👎); no words of it are copied."""
        rating = "up" if payload == UP else "down"
        before = turn.ask.inbound_id or sys.maxsize
        kind = await self._store.add_feedback(turn.user, before, rating, frozenset(OFFERS))
        FEEDBACK.labels(rating, kind or "none").inc()
        log.info("feedback", user=user_ref(turn.user), rating=rating, kind=kind)

    async def _comment(self, turn: Turn) -> bool:
        """Whether the message answers the question that followed a 👎 (the next message,
        within `COMMENT_WINDOW`): it is then stored as that rating's comment, not answered.
        The parent's words are never logged."""
        before = turn.ask.inbound_id or sys.maxsize
        since = turn.incoming.received_at - COMMENT_WINDOW
        rating = await self._store.awaiting_comment(turn.user, before, FEEDBACK_QUESTION, since)
        if rating is None:
            return False
        await self._store.add_feedback_comment(rating, turn.incoming.text.strip())
        log.info("feedback_comment", user=user_ref(turn.user))
        return True

    async def _checkin_question(self, turn: Turn) -> Decision:
        """The check-in due: "How did the dinosaur hunt go?", with its quick answers."""
        checkin_id = turn.incoming.payload.removeprefix(CHECKIN_DUE)
        checkin = await self._checkins.get(int(checkin_id)) if checkin_id.isdigit() else None
        if checkin is None:  # forgotten since
            return Silent()
        key = "checkin_list" if checkin.whole_list else "checkin_one"
        return Fixed(key, turn.profile.language, {"activity": checkin.about})

    async def _checkin_tap(self, turn: Turn, verdict: str) -> str:
        """A quick answer to the check-in: filed on it (a tap on an old one, or after the
        check-in was answered, is only thanked)."""
        checkin = await self._checkins.awaiting(turn.user)
        if checkin is not None:
            await self._checkins.answered(checkin, verdict, None)
            FEEDBACK.labels(verdict, "checkin").inc()
            log.info("checkin_answered", user=user_ref(turn.user), verdict=verdict, tapped=True)
        return f"checkin_{verdict}"

    async def _checkin_reply(self, turn: Turn) -> str | None:
        """The fixed text answering the parent's own words about the activity Sprout asked
        about (the first message after the check-in, within `CHECKIN_REPLY_WINDOW`), which
        are filed on it; None when the message is not that, or is a question to answer."""
        incoming, before = turn.incoming, turn.ask.inbound_id or sys.maxsize
        checkin = await self._checkins.awaiting(turn.user)
        if checkin is None or checkin.sent_at is None or is_question(incoming.text):
            return None
        late = incoming.received_at - checkin.sent_at > CHECKIN_REPLY_WINDOW
        if late or not await self._checkins.first_reply(checkin, before):
            return None
        said = verdict(incoming.text)
        await self._checkins.answered(checkin, said, incoming.text.strip())
        FEEDBACK.labels(said, "checkin").inc()
        log.info("checkin_answered", user=user_ref(turn.user), verdict=said, tapped=False)
        return "checkin_thanks" if said == REPLY else f"checkin_{said}"

    async def _settings(self, turn: Turn) -> dict[str, str]:
        language = turn.profile.language
        return {
            "profile": profile_summary(self._prompts, turn.profile, "\n"),
            "ideas": await self._programme.setting(turn.user, language),
            "research": self._prompts.text(
                "research_setting_out" if turn.state.no_research else "research_setting_in",
                language,
            ),
        }

    async def _ideas(self, turn: Turn, language: str | None) -> Fixed | None:
        """Asking for regular ideas, or changing them ("pause ideas"), in plain words or with
        the button offering them."""
        incoming, programme = turn.incoming, self._programme
        behaviour = turn.ask.behaviour
        if behaviour is not None and behaviour.nudge_days is not None:
            programme = programme.instead_of_every_day(behaviour.nudge_days)
        reply: Reply | None
        if incoming.payload == IDEAS:
            when = incoming.received_at
            reply = await programme.every_morning(turn.user, incoming.channel, when, language)
        else:
            reply = await programme.answer(
                turn.user, incoming.channel, incoming.text, incoming.received_at, language
            )
        return None if reply is None else Fixed(reply[0], reply[2], reply[1])
