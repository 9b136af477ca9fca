"""The screening stages: the phrase lists read every message; nothing of an answer leaves
before moderation's verdict, and a held answer is replaced by what its flag calls for."""

import asyncio
from collections.abc import AsyncIterator

from sprout.core.chunking import Chunk
from sprout.core.messages import Incoming
from sprout.core.profile import Profile
from sprout.core.prompts import Prompts
from sprout.core.safety import Category, Concern
from sprout.core.screening import HeldError, RequestScreen, ScreenedAnswer, Verdict, concern_of
from sprout.core.specs import WHATSAPP
from sprout.core.store import UserState
from sprout.core.turn import Ask, Turn

SAFE = Chunk("Let's talk about something else.", "safe")
NOTHING: frozenset[str] = frozenset()


async def answer(*texts: str) -> AsyncIterator[Chunk]:
    for text in texts:
        yield Chunk(text, text)


class Instead:
    """What replaces a held answer; remembers what it was asked for."""

    def __init__(self) -> None:
        self.asked: list[Concern | None] = []

    async def __call__(self, held: HeldError) -> AsyncIterator[Chunk]:
        self.asked.append(held.concern)
        yield SAFE


async def verdict_of(flags: frozenset[str], delay_s: float = 0.0) -> frozenset[str]:
    await asyncio.sleep(delay_s)
    return flags


class Moderator:
    def __init__(self) -> None:
        self.checked: list[str] = []

    async def flags(self, text: str) -> frozenset[str]:
        self.checked.append(text)
        return frozenset({"violence"}) if "hurt" in text else NOTHING


def turn(text: str, already_sent: str = "", first_contact: bool = False) -> Turn:
    incoming = Incoming("whatsapp", "whatsapp:+447700900001", text, "SM1")
    ask = Ask(incoming, WHATSAPP, already_sent=already_sent)
    return Turn(ask, incoming, UserState({}, False, first_contact, ()), Profile())


def test_moderation_categories_map_onto_ours() -> None:
    flags = frozenset({"self-harm/intent", "violence"})
    assert concern_of(flags) == Concern((Category.CRISIS,), source="moderation", flags=flags)
    both = concern_of(frozenset({"self-harm", "sexual/minors"}))
    assert both is not None and both.categories == (Category.CHILD_AT_RISK, Category.CRISIS)
    assert concern_of(frozenset({"violence", "hate"})) is None


async def test_a_passed_answer_goes_through_whole_and_in_order() -> None:
    instead = Instead()
    screened = ScreenedAnswer(answer("one", "two"), Verdict(verdict_of(NOTHING)), instead)
    assert [chunk.text async for chunk in screened] == ["one", "two"]
    assert not screened.held and instead.asked == []


async def test_a_held_answer_is_replaced_unseen_by_what_its_flag_calls_for() -> None:
    instead = Instead()
    verdict = Verdict(verdict_of(frozenset({"self-harm"}), delay_s=0.05))  # after the answer
    screened = ScreenedAnswer(answer("never shown"), verdict, instead)
    assert [chunk.text async for chunk in screened] == [SAFE.text]
    crisis = Concern((Category.CRISIS,), source="moderation", flags=frozenset({"self-harm"}))
    assert screened.held and instead.asked == [crisis]


async def test_a_flag_none_of_our_categories_covers_still_holds_the_answer() -> None:
    instead = Instead()
    screened = ScreenedAnswer(answer("x"), Verdict(verdict_of(frozenset({"hate"}))), instead)
    assert [chunk.text async for chunk in screened] == [SAFE.text]
    assert screened.held and screened.concern is None and instead.asked == [None]


async def test_moderation_is_asked_for_every_answer_a_resumed_one_too(prompts: Prompts) -> None:
    moderator = Moderator()
    screen = RequestScreen(prompts.safeguarding.matcher, moderator)
    held = ScreenedAnswer(answer("x"), screen.start(turn("how to hurt")), Instead())
    assert [c.text async for c in held] == [SAFE.text]
    resumed = screen.start(turn("how to hurt", "what the parent already has"))
    assert [c.text async for c in ScreenedAnswer(answer("rest"), resumed, Instead())] == [SAFE.text]
    assert moderator.checked == ["how to hurt", "how to hurt"]


async def test_without_moderation_every_request_passes(prompts: Prompts) -> None:
    screen = RequestScreen(prompts.safeguarding.matcher, None)
    screened = ScreenedAnswer(answer("hi"), screen.start(turn("x")), Instead())
    assert [c.text async for c in screened] == ["hi"]


def test_the_phrase_lists_read_every_message_the_first_one_too(prompts: Prompts) -> None:
    screen = RequestScreen(prompts.safeguarding.matcher, None)
    concern = screen.check(turn("my baby has gone blue", first_contact=True))
    assert concern is not None and concern.categories == (Category.EMERGENCY,)
    assert concern.language == "en" and concern.source == "matcher"
    assert screen.check(turn("Explain why the sky is blue", first_contact=True)) is None
