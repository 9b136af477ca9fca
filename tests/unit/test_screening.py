"""The screening stages: nothing of an answer leaves before the request's verdict, and a
refused request gets the safe text instead."""

import asyncio
from collections.abc import AsyncIterator

from sprout.core.chunking import Chunk
from sprout.core.messages import Incoming
from sprout.core.profile import Profile
from sprout.core.screening import RequestScreen, ScreenedAnswer, Verdict
from sprout.core.specs import WHATSAPP
from sprout.core.store import UserState
from sprout.core.turn import Ask, Turn

SAFE = [Chunk("Let's talk about something else.", "safe")]


async def answer(*texts: str) -> AsyncIterator[Chunk]:
    for text in texts:
        yield Chunk(text, text)


async def verdict_of(flagged: bool, delay_s: float = 0.0) -> bool:
    await asyncio.sleep(delay_s)
    return flagged


class Moderator:
    def __init__(self) -> None:
        self.checked: list[str] = []

    async def flagged(self, text: str) -> bool:
        self.checked.append(text)
        return "hurt" in text


def turn(text: str, already_sent: str = "") -> Turn:
    incoming = Incoming("whatsapp", "whatsapp:+447700900001", text, "SM1")
    ask = Ask(incoming, WHATSAPP, already_sent=already_sent)
    return Turn(ask, incoming, UserState({}, False, False, ()), Profile())


async def test_a_passed_answer_goes_through_whole_and_in_order() -> None:
    screened = ScreenedAnswer(answer("one", "two"), Verdict(verdict_of(False)), lambda: SAFE)
    assert [chunk.text async for chunk in screened] == ["one", "two"]
    assert not screened.refused


async def test_a_refused_request_gets_the_safe_text_and_nothing_of_the_answer() -> None:
    verdict = Verdict(verdict_of(True, delay_s=0.05))  # the verdict comes after the answer
    screened = ScreenedAnswer(answer("never shown"), verdict, lambda: SAFE)
    assert [chunk.text async for chunk in screened] == [SAFE[0].text]
    assert screened.refused


async def test_the_request_screen_asks_moderation_but_not_for_a_resumed_answer() -> None:
    moderator = Moderator()
    screen = RequestScreen(moderator)
    refused = ScreenedAnswer(answer("x"), screen.start(turn("how to hurt")), lambda: SAFE)
    assert [c.text async for c in refused] == [SAFE[0].text]
    resumed = ScreenedAnswer(
        answer("rest"), screen.start(turn("how to hurt", "first part")), lambda: SAFE
    )
    assert [c.text async for c in resumed] == ["rest"]
    assert moderator.checked == ["how to hurt"]


async def test_without_moderation_every_request_passes() -> None:
    screened = ScreenedAnswer(answer("hi"), RequestScreen(None).start(turn("x")), lambda: SAFE)
    assert [c.text async for c in screened] == ["hi"]
