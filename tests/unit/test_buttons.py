"""Buttons under answers the model wrote, taps routed by payload, and "typing…" instead of
the hold text."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from sprout.core.bot import Bot, BotConfig
from sprout.core.buttons import ANOTHER, DOWN, IDEAS, MORE, UP, Buttons
from sprout.core.delivery import Channel, Delivery
from sprout.core.llm import StreamItem, Tools
from sprout.core.messages import BLOCK_SEPARATOR, Incoming
from sprout.core.prompts import ChatMessage, Prompts
from sprout.core.routing import Intent, route
from sprout.core.specs import WEB_STREAMING, WHATSAPP
from sprout.core.store import Store
from tests.unit.doubles import ButtonRecorder, FakeIndicator, FakeLLM

USER = "whatsapp:+447700900001"
IDEA = "**Dino stomp**\nStomp and count each step.\nAreas: Mathematics"


def test_a_tap_is_routed_by_its_payload_not_its_label() -> None:
    assert route("Otra idea", ANOTHER).intent is Intent.ANOTHER
    assert route("anything at all", MORE).intent is Intent.MORE
    assert route("👍", "").argument == UP and route("👎🏾").argument == DOWN
    assert route("all ideas").intent is Intent.ALL_IDEAS
    assert route("👍 thanks, but why?").intent is Intent.CHAT


async def run(
    store: Store, prompts: Prompts, texts: list[str], model: FakeLLM, channel: Channel
) -> None:
    bot = Bot(model, prompts, store, BotConfig(retry_wait_s=0))
    # A hold text only where the indicator is tested (it needs time to show).
    hold_after_s = 0.05 if channel.indicator else 30.0
    delivery = Delivery(store, bot, {"whatsapp": channel}, hold_after_s=hold_after_s)
    for n, text in enumerate(texts):
        inbound = await store.record_inbound(Incoming("whatsapp", USER, text, f"SM{text}{n}"))
        assert inbound is not None
        await delivery.run(inbound)


async def test_answers_end_with_buttons_and_fixed_texts_do_not(
    store: Store, prompts: Prompts
) -> None:
    sender = ButtonRecorder()
    texts = ["Activities dinosaurs", "Explain rain", "👍", "help", "Another idea"]
    await run(store, prompts, texts, FakeLLM(IDEA), Channel(WHATSAPP, sender, buttons=sender))
    answers = {0: (ANOTHER, UP, DOWN), 1: (MORE, UP, DOWN), 4: (ANOTHER, UP, DOWN)}
    # The thanks for a 👍 offers regular ideas to a family without them: one button.
    assert sender.buttons == {**answers, 2: (IDEAS,)}
    assert sender.sent[2] == prompts.text("thanks_ideas")


async def test_an_apology_gets_no_buttons(store: Store, prompts: Prompts) -> None:
    sender, model = ButtonRecorder(), FakeLLM(IDEA)
    model.failures = [0, 0]
    await run(store, prompts, ["Explain rain"], model, Channel(WHATSAPP, sender, buttons=sender))
    assert sender.sent == [prompts.text("apology")] and sender.buttons == {}


async def test_typing_instead_of_the_hold_text_unless_refused(
    store: Store, prompts: Prompts
) -> None:
    for works, expected_hold in ((True, False), (False, True)):
        sender, indicator = ButtonRecorder(), FakeIndicator(works=works)
        channel = Channel(WHATSAPP, sender, indicator=indicator)
        await run(store, prompts, [f"Explain rain {works}"], FakeLLM(IDEA, 0.03), channel)
        assert len(indicator.shown) == 1
        assert (prompts.text("hold") in sender.sent) is expected_hold


class CountingLLM(FakeLLM):
    """Counts the words it has written so far."""

    written = 0

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Tools = (), max_tokens: int | None = None
    ) -> AsyncIterator[StreamItem]:
        async for item in super().stream(messages, tools, max_tokens):
            if isinstance(item, str):
                self.written += len(item.split())
            yield item


@dataclass
class Watching(ButtonRecorder):
    """Notes how much the model had written when each message went."""

    model: CountingLLM | None = None
    written_at_send: list[int] = field(default_factory=list)
    alone: list[tuple[str, ...]] = field(default_factory=list)

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        assert self.model is not None
        self.written_at_send.append(self.model.written)
        return await super().send(incoming, text, joint)

    async def send_buttons(self, incoming: Incoming, buttons: Buttons) -> None:
        self.alone.append(tuple(b.payload for b in buttons.options))


async def test_a_long_answer_is_not_held_back_for_its_buttons(
    store: Store, prompts: Prompts
) -> None:
    """Each message goes once it is ready, not when the next one is; the buttons then come
    under the last message, or after it on their own."""
    paragraph = "Watch the rain run down the window and race two drops to the bottom. " * 10
    answer = "\n\n".join(f"Part {n}: {paragraph.strip()}" for n in range(1, 5))
    model = CountingLLM(answer, delay_s=0.004)
    sender = Watching(model=model)
    await run(store, prompts, ["Explain rain"], model, Channel(WHATSAPP, sender, buttons=sender))
    assert len(sender.sent) >= 3
    first_message_words = len(sender.sent[0].split())
    next_message_words = len(sender.sent[1].split())
    assert sender.written_at_send[0] < first_message_words + next_message_words / 2
    under_last = sender.buttons.get(len(sender.sent) - 1)
    shown = [under_last] if under_last else sender.alone
    assert shown == [(MORE, UP, DOWN)]


LIST = "**Games**\n**Dino stomp**\nStomp and count.\n\n**Fossil dig**\nDig in sand."


async def test_another_idea_after_a_whole_list_is_one_new_idea_on_its_topic(
    store: Store, prompts: Prompts
) -> None:
    """Where activities come as a whole list (the web page), the list's topic is filed too,
    so "Another idea" is one idea on it, unlike those listed."""
    sender, model = ButtonRecorder(), FakeLLM(LIST)
    bot = Bot(model, prompts, store, BotConfig(retry_wait_s=0))
    delivery = Delivery(store, bot, {"web": Channel(WEB_STREAMING, sender, buttons=sender)})
    for n, (text, payload) in enumerate([("Activities dinosaurs", ""), ("Otra idea", ANOTHER)]):
        incoming = Incoming("web", "web:1", text, f"m{n}", payload=payload)
        inbound = await store.record_inbound(incoming)
        assert inbound is not None
        await delivery.run(inbound)
    listed, another = model.requests
    assert "Conversations" in listed[0]["content"], "the whole list was asked for first"
    assert "- Dino stomp\n" in another[0]["content"] and "- Fossil dig\n" in another[0]["content"]
    assert another[-1]["content"].endswith("dinosaurs")
    assert prompts.text("activities_empty") not in sender.sent


async def test_where_buttons_show_apart_no_message_waits_for_them(
    store: Store, prompts: Prompts
) -> None:
    """The web page shows the buttons under the answer whichever message brings them: each
    block goes as soon as it is written (its time is what the page measures)."""
    answer = "\n\n".join(f"Part {n}: " + "Rain falls. " * 15 for n in range(1, 4))
    model = CountingLLM(answer, delay_s=0.01)
    sender = Watching(model=model)
    channel = Channel(WEB_STREAMING, sender, buttons=sender, buttons_apart=True)
    bot = Bot(model, prompts, store, BotConfig(retry_wait_s=0))
    inbound = await store.record_inbound(Incoming("web", "web:1", "Explain rain", "m1"))
    assert inbound is not None
    await Delivery(store, bot, {"web": channel}).run(inbound)
    assert len(sender.sent) == 3
    first_block_words = len(sender.sent[0].split())
    assert sender.written_at_send[0] < first_block_words + 15, "not held for the next block"
    under_last = sender.buttons.get(len(sender.sent) - 1)
    assert ([under_last] if under_last else sender.alone) == [(MORE, UP, DOWN)]
